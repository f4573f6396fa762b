//! Static checking: resolves names against a [`TypeEnv`] and infers the type of
//! every node, collecting every problem instead of stopping at the first.

use std::collections::BTreeSet;

use super::ast::{Arg, BinaryOp, Kind, Node, Span, UnaryOp};
use super::builtins::{LambdaUse, Registry};
use super::ops::{is_numeric, is_string, numeric_result, unify};
use super::{ExprError, TypeEnv};
use crate::value::{Type, Value};

pub struct Checker<'a> {
    env: &'a dyn TypeEnv,
    registry: &'a Registry,
    /// Lambda parameters in scope, innermost last.
    scopes: Vec<(String, Type)>,
    pub errors: Vec<ExprError>,
    /// Root variables of the environment the expression reads.
    pub variables: BTreeSet<String>,
}

impl<'a> Checker<'a> {
    pub fn new(env: &'a dyn TypeEnv, registry: &'a Registry) -> Checker<'a> {
        Checker {
            env,
            registry,
            scopes: Vec::new(),
            errors: Vec::new(),
            variables: BTreeSet::new(),
        }
    }

    fn error(&mut self, code: &'static str, span: Span, message: impl Into<String>) {
        self.errors.push(ExprError::new(code, span, message));
    }

    fn type_error(&mut self, span: Span, message: impl Into<String>) -> Type {
        self.error("E_TYPE", span, message);
        Type::Any
    }

    pub fn check(&mut self, node: &Node) -> Type {
        match &node.kind {
            Kind::Literal(value) => literal_type(value),
            Kind::Variable(name) => self.variable(name, node.span),
            Kind::Member(object, field) => {
                let object_type = self.check(object);
                self.member(&object_type, field, node.span)
            }
            Kind::Index(list, index) => {
                let list_type = self.check(list);
                let index_type = self.check(index);
                match list_type {
                    Type::Any => Type::Any,
                    Type::List(item) => {
                        if !matches!(index_type, Type::Int | Type::Any) {
                            self.type_error(
                                index.span,
                                format!("a list index must be an int, not {index_type}"),
                            );
                        }
                        *item
                    }
                    Type::Object { .. } => {
                        if !is_string(&index_type) {
                            self.type_error(
                                index.span,
                                format!("an object key must be a string, not {index_type}"),
                            );
                        }
                        Type::Any
                    }
                    other => self.type_error(list.span, format!("cannot index into {other}")),
                }
            }
            Kind::Unary(op, operand) => {
                let t = self.check(operand);
                match op {
                    UnaryOp::Neg if is_numeric(&t) => t,
                    UnaryOp::Neg => self.type_error(node.span, format!("cannot negate {t}")),
                    UnaryOp::Not if matches!(t, Type::Bool | Type::Any) => Type::Bool,
                    UnaryOp::Not => {
                        self.type_error(node.span, format!("`not` needs a bool, found {t}"))
                    }
                }
            }
            Kind::Binary(op, lhs, rhs) => {
                let (l, r) = (self.check(lhs), self.check(rhs));
                self.binary(*op, &l, &r, lhs, rhs, node.span)
            }
            Kind::Ternary(cond, then, otherwise) => {
                let c = self.check(cond);
                if !matches!(c, Type::Bool | Type::Any) {
                    self.type_error(
                        cond.span,
                        format!("the condition of `?:` must be a bool, found {c}"),
                    );
                }
                let (a, b) = (self.check(then), self.check(otherwise));
                match unify(&a, &b) {
                    Some(t) => t,
                    None => self.type_error(
                        node.span,
                        format!("the branches of `?:` have different types: {a} and {b}"),
                    ),
                }
            }
            Kind::List(items) => {
                let mut item_type = Type::Null;
                for item in items {
                    let t = self.check(item);
                    item_type = match unify(&item_type, &t) {
                        Some(u) => u,
                        None => self.type_error(
                            item.span,
                            format!("list items have different types: {item_type} and {t}"),
                        ),
                    };
                }
                if item_type == Type::Null {
                    item_type = Type::Any;
                }
                Type::list(item_type)
            }
            Kind::Call {
                name,
                name_span,
                args,
            } => self.call(name, *name_span, args, node.span),
        }
    }

    fn variable(&mut self, name: &str, span: Span) -> Type {
        if let Some((_, t)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
            return t.clone();
        }
        if let Some(t) = self.env.var_type(name) {
            self.variables.insert(name.to_string());
            return t;
        }
        let mut candidates: Vec<String> = self.env.var_names();
        candidates.extend(self.scopes.iter().map(|(n, _)| n.clone()));
        let mut err = ExprError::new(
            "E_UNKNOWN_VARIABLE",
            span,
            format!("unknown variable `{name}`"),
        );
        err.hint = did_you_mean(name, candidates.iter().map(String::as_str));
        self.errors.push(err);
        Type::Any
    }

    fn member(&mut self, object_type: &Type, field: &str, span: Span) -> Type {
        match object_type {
            Type::Any => Type::Any,
            Type::Object { fields, open } => match fields.get(field) {
                Some(t) => t.clone(),
                None if *open => Type::Any,
                None => {
                    let mut err = ExprError::new(
                        "E_UNKNOWN_FIELD",
                        span,
                        format!("the object has no field `{field}`"),
                    );
                    err.hint = did_you_mean(field, fields.keys().map(String::as_str));
                    self.errors.push(err);
                    Type::Any
                }
            },
            other => self.type_error(span, format!("{other} has no field `{field}`")),
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        l: &Type,
        r: &Type,
        lhs: &Node,
        rhs: &Node,
        span: Span,
    ) -> Type {
        let sym = op.symbol();
        match op {
            BinaryOp::And | BinaryOp::Or => {
                for (t, n) in [(l, lhs), (r, rhs)] {
                    if !matches!(t, Type::Bool | Type::Any) {
                        self.type_error(n.span, format!("`{sym}` needs bool operands, found {t}"));
                    }
                }
                Type::Bool
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                if !comparable_for_equality(l, r) {
                    return self.type_error(span, format!("cannot compare {l} with {r}"));
                }
                self.check_enum_literal(l, rhs);
                self.check_enum_literal(r, lhs);
                Type::Bool
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let ok = (is_numeric(l) && is_numeric(r))
                    || (is_string(l) && is_string(r))
                    || matches!(
                        (l, r),
                        (Type::Date, Type::Date) | (Type::DateTime, Type::DateTime)
                    )
                    || (*l == Type::Any && is_ordered(r))
                    || (*r == Type::Any && is_ordered(l));
                if !ok {
                    return self.type_error(span, format!("cannot order {l} and {r} with `{sym}`"));
                }
                Type::Bool
            }
            BinaryOp::In => {
                match r {
                    Type::Any => {}
                    Type::List(item) => {
                        if !comparable_for_equality(l, item) {
                            self.type_error(
                                span,
                                format!("cannot look for {l} in a list of {item}"),
                            );
                        } else {
                            self.check_enum_literal(item, lhs);
                        }
                    }
                    t if is_string(t) && is_string(l) => {}
                    t => {
                        self.type_error(
                            rhs.span,
                            format!("`in` needs a list on its right, found {t}"),
                        );
                    }
                }
                Type::Bool
            }
            BinaryOp::Add
                if is_string(l) && is_string(r) && !(*l == Type::Any && *r == Type::Any) =>
            {
                Type::String
            }
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Rem | BinaryOp::Div => {
                if !(is_numeric(l) && is_numeric(r)) {
                    return self.type_error(span, format!("cannot apply `{sym}` to {l} and {r}"));
                }
                if op == BinaryOp::Div {
                    return Type::Decimal;
                }
                numeric_result(l, r)
            }
        }
    }

    /// `area == "urbn"` against an enum type is a typo caught at load time.
    fn check_enum_literal(&mut self, ty: &Type, other: &Node) {
        if let (Type::Enum(values), Kind::Literal(Value::Str(s))) = (ty, &other.kind)
            && !values.iter().any(|v| v == s)
        {
            let mut err = ExprError::new(
                "E_TYPE",
                other.span,
                format!("{s:?} is not one of {}", values.join(", ")),
            );
            err.hint = did_you_mean(s, values.iter().map(String::as_str));
            self.errors.push(err);
        }
    }

    fn call(&mut self, name: &str, name_span: Span, args: &[Arg], span: Span) -> Type {
        let Some(builtin) = self.registry.get(name) else {
            let mut err = ExprError::new(
                "E_UNKNOWN_FUNCTION",
                name_span,
                format!("unknown function `{name}`"),
            );
            err.hint = did_you_mean(name, self.registry.names());
            self.errors.push(err);
            for arg in args {
                self.check_arg_loosely(arg);
            }
            return Type::Any;
        };
        if args.len() < builtin.min_args || args.len() > builtin.max_args {
            let expected = if builtin.min_args == builtin.max_args {
                format!("{}", builtin.min_args)
            } else {
                format!("{} to {}", builtin.min_args, builtin.max_args)
            };
            self.error(
                "E_ARITY",
                span,
                format!(
                    "`{name}` takes {expected} argument(s), found {}: {}",
                    args.len(),
                    builtin.signature
                ),
            );
            for arg in args {
                self.check_arg_loosely(arg);
            }
            return Type::Any;
        }
        let mut types = Vec::with_capacity(args.len());
        let mut failed = false;
        for (i, arg) in args.iter().enumerate() {
            match arg {
                Arg::Expr(node) => {
                    if i == 1 && builtin.lambda == LambdaUse::Required {
                        self.error(
                            "E_TYPE",
                            node.span,
                            format!("`{name}` needs a lambda `x => ...` as its second argument"),
                        );
                        failed = true;
                    }
                    types.push(self.check(node));
                }
                Arg::Lambda { param, body, .. } => {
                    if i != 1 || builtin.lambda == LambdaUse::None {
                        self.error(
                            "E_TYPE",
                            arg.span(),
                            format!("`{name}` does not take a lambda here"),
                        );
                        self.check_arg_loosely(arg);
                        types.push(Type::Any);
                        failed = true;
                        continue;
                    }
                    let item = match types.first() {
                        Some(Type::List(item)) => (**item).clone(),
                        _ => Type::Any,
                    };
                    self.scopes.push((param.clone(), item));
                    types.push(self.check(body));
                    self.scopes.pop();
                }
            }
        }
        if failed {
            return Type::Any;
        }
        match (builtin.check)(&types) {
            Ok(t) => t,
            Err(message) => self.type_error(span, format!("{message}: {}", builtin.signature)),
        }
    }

    fn check_arg_loosely(&mut self, arg: &Arg) {
        match arg {
            Arg::Expr(node) => {
                self.check(node);
            }
            Arg::Lambda { param, body, .. } => {
                self.scopes.push((param.clone(), Type::Any));
                self.check(body);
                self.scopes.pop();
            }
        }
    }
}

pub fn literal_type(value: &Value) -> Type {
    match value {
        Value::Null => Type::Null,
        Value::Bool(_) => Type::Bool,
        Value::Int(_) => Type::Int,
        Value::Decimal(_) => Type::Decimal,
        Value::Str(_) => Type::String,
        Value::Date(_) => Type::Date,
        Value::DateTime(_) => Type::DateTime,
        Value::List(_) => Type::list(Type::Any),
        Value::Object(_) => Type::open_object(),
    }
}

fn is_ordered(t: &Type) -> bool {
    matches!(
        t,
        Type::Int
            | Type::Decimal
            | Type::String
            | Type::Enum(_)
            | Type::Date
            | Type::DateTime
            | Type::Any
    )
}

pub fn comparable_for_equality(l: &Type, r: &Type) -> bool {
    matches!(l, Type::Null) || matches!(r, Type::Null) || l.accepts(r) || r.accepts(l)
}

/// A "did you mean" hint: the closest candidate within a small edit distance.
pub fn did_you_mean<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (name.chars().count() / 3).max(1) && *c != name)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}
