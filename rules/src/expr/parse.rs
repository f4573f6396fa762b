//! Parsing: source text → [`Node`] tree, through the pest grammar and a Pratt parser.
//!
//! Limits are enforced before and while parsing so hostile input cannot blow the
//! stack: the source length, a cheap pre-scan of nesting (brackets, ternaries,
//! runs of prefix operators) that bounds the parser's own recursion, and the
//! tree depth, checked node by node as the tree is built.

use std::str::FromStr;
use std::sync::OnceLock;

use pest::Parser;
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use rust_decimal::Decimal;

use super::ExprError;
use super::ast::{Arg, BinaryOp, Kind, Node, Span, UnaryOp};
use crate::value::Value;

/// Longest accepted expression source, in bytes.
pub const MAX_SOURCE_LEN: usize = 4096;
/// Deepest accepted syntax tree.
pub const MAX_DEPTH: usize = 64;

#[derive(pest_derive::Parser)]
#[grammar = "expr/grammar.pest"]
struct ExprParser;

fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::ternary, Assoc::Right))
            .op(Op::infix(Rule::or, Assoc::Left))
            .op(Op::infix(Rule::and, Assoc::Left))
            .op(Op::infix(Rule::eq, Assoc::Left) | Op::infix(Rule::ne, Assoc::Left))
            .op(Op::infix(Rule::lt, Assoc::Left)
                | Op::infix(Rule::le, Assoc::Left)
                | Op::infix(Rule::gt, Assoc::Left)
                | Op::infix(Rule::ge, Assoc::Left)
                | Op::infix(Rule::in_op, Assoc::Left))
            .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
            .op(Op::infix(Rule::mul, Assoc::Left)
                | Op::infix(Rule::div, Assoc::Left)
                | Op::infix(Rule::rem, Assoc::Left))
            .op(Op::prefix(Rule::neg) | Op::prefix(Rule::not))
            .op(Op::postfix(Rule::member) | Op::postfix(Rule::index))
    })
}

/// Parses `src` into a tree, or returns the first syntax or limit error.
pub fn parse(src: &str) -> Result<Node, ExprError> {
    if src.len() > MAX_SOURCE_LEN {
        return Err(ExprError::new(
            "E_TOO_LONG",
            Span::new(MAX_SOURCE_LEN, src.len()),
            format!(
                "expression is {} bytes long; the limit is {MAX_SOURCE_LEN}",
                src.len()
            ),
        ));
    }
    prescan(src)?;
    let mut pairs = ExprParser::parse(Rule::expression, src).map_err(syntax_error)?;
    let expression = pairs.next().ok_or_else(|| {
        ExprError::new("E_EXPR_SYNTAX", Span::new(0, src.len()), "empty expression")
    })?;
    let expr = expression
        .into_inner()
        .find(|p| p.as_rule() == Rule::expr)
        .ok_or_else(|| {
            ExprError::new("E_EXPR_SYNTAX", Span::new(0, src.len()), "empty expression")
        })?;
    build_expr(expr)
}

fn syntax_error(err: pest::error::Error<Rule>) -> ExprError {
    use pest::error::{ErrorVariant, InputLocation};
    let span = match err.location {
        InputLocation::Pos(p) => Span { offset: p, len: 0 },
        InputLocation::Span((s, e)) => Span::new(s, e),
    };
    let message = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut wanted: Vec<&str> = positives.iter().filter_map(|r| describe(*r)).collect();
            wanted.sort_unstable();
            wanted.dedup();
            if wanted.is_empty() {
                "unexpected input".to_string()
            } else {
                format!("expected {}", wanted.join(", "))
            }
        }
        ErrorVariant::CustomError { message } => message.clone(),
    };
    ExprError::new("E_EXPR_SYNTAX", span, message)
}

fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of expression",
        Rule::expr | Rule::primary => "an operand",
        Rule::decimal | Rule::integer => "a number",
        Rule::string => "a string",
        Rule::ident => "a name",
        Rule::call => "a function call",
        Rule::list => "a list",
        Rule::lambda => "a lambda `x => ...`",
        Rule::ternary => "`?`",
        Rule::or | Rule::and => "a logical operator",
        Rule::eq | Rule::ne | Rule::lt | Rule::le | Rule::gt | Rule::ge | Rule::in_op => {
            "a comparison"
        }
        Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::rem => "an operator",
        Rule::member => "`.`",
        Rule::index => "`[`",
        _ => return None,
    })
}

/// Bounds the nesting the parser will recurse into, without recursing itself.
fn prescan(src: &str) -> Result<(), ExprError> {
    let bytes = src.as_bytes();
    let mut bracket_depth = 0usize;
    let mut ternaries = 0usize;
    let mut prefix_run = 0usize;
    let mut i = 0;
    let too_deep = |at: usize, what: &str| {
        ExprError::new(
            "E_TOO_DEEP",
            Span { offset: at, len: 1 },
            format!("expression nests too deeply ({what}); the limit is {MAX_DEPTH}"),
        )
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' | b'\'' => {
                // Skip the string literal, honouring backslash escapes.
                i += 1;
                while i < bytes.len() && bytes[i] != b {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                prefix_run = 0;
            }
            b'(' | b'[' => {
                bracket_depth += 1;
                if bracket_depth > MAX_DEPTH {
                    return Err(too_deep(i, "brackets"));
                }
            }
            b')' | b']' => {
                bracket_depth = bracket_depth.saturating_sub(1);
                prefix_run = 0;
            }
            b'?' => {
                ternaries += 1;
                if ternaries > MAX_DEPTH {
                    return Err(too_deep(i, "conditionals"));
                }
            }
            b'!' | b'-' => {
                prefix_run += 1;
                if prefix_run > MAX_DEPTH {
                    return Err(too_deep(i, "prefix operators"));
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => {
                if bytes[i..].starts_with(b"not")
                    && !bytes
                        .get(i + 3)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    prefix_run += 1;
                    if prefix_run > MAX_DEPTH {
                        return Err(too_deep(i, "prefix operators"));
                    }
                    i += 3;
                    continue;
                }
                prefix_run = 0;
            }
        }
        i += 1;
    }
    Ok(())
}

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

fn make(kind: Kind, span: Span, depth: usize) -> Result<Node, ExprError> {
    if depth > MAX_DEPTH {
        return Err(ExprError::new(
            "E_TOO_DEEP",
            span,
            format!("expression nests too deeply; the limit is {MAX_DEPTH}"),
        ));
    }
    Ok(Node { kind, span, depth })
}

fn build_expr(pair: Pair<'_, Rule>) -> Result<Node, ExprError> {
    build_pairs(pair.into_inner())
}

fn build_pairs(pairs: Pairs<'_, Rule>) -> Result<Node, ExprError> {
    pratt()
        .map_primary(build_primary)
        .map_prefix(|op, rhs| {
            let rhs = rhs?;
            let unary = if op.as_rule() == Rule::neg {
                UnaryOp::Neg
            } else {
                UnaryOp::Not
            };
            let span = span_of(&op).join(rhs.span);
            let depth = rhs.depth + 1;
            make(Kind::Unary(unary, Box::new(rhs)), span, depth)
        })
        .map_postfix(|lhs, op| {
            let lhs = lhs?;
            let span = lhs.span.join(span_of(&op));
            match op.as_rule() {
                Rule::member => {
                    let name = op
                        .into_inner()
                        .next()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_default();
                    let depth = lhs.depth + 1;
                    make(Kind::Member(Box::new(lhs), name), span, depth)
                }
                _ => {
                    let index_pair = op.into_inner().next().ok_or_else(|| {
                        ExprError::new("E_EXPR_SYNTAX", span, "missing index expression")
                    })?;
                    let index = build_expr(index_pair)?;
                    let depth = lhs.depth.max(index.depth) + 1;
                    make(Kind::Index(Box::new(lhs), Box::new(index)), span, depth)
                }
            }
        })
        .map_infix(|lhs, op, rhs| {
            let (lhs, rhs) = (lhs?, rhs?);
            let span = lhs.span.join(rhs.span);
            if op.as_rule() == Rule::ternary {
                let middle_pair = op.into_inner().next().ok_or_else(|| {
                    ExprError::new("E_EXPR_SYNTAX", span, "missing branch after `?`")
                })?;
                let middle = build_expr(middle_pair)?;
                let depth = lhs.depth.max(middle.depth).max(rhs.depth) + 1;
                return make(
                    Kind::Ternary(Box::new(lhs), Box::new(middle), Box::new(rhs)),
                    span,
                    depth,
                );
            }
            let binary = match op.as_rule() {
                Rule::or => BinaryOp::Or,
                Rule::and => BinaryOp::And,
                Rule::eq => BinaryOp::Eq,
                Rule::ne => BinaryOp::Ne,
                Rule::lt => BinaryOp::Lt,
                Rule::le => BinaryOp::Le,
                Rule::gt => BinaryOp::Gt,
                Rule::ge => BinaryOp::Ge,
                Rule::in_op => BinaryOp::In,
                Rule::add => BinaryOp::Add,
                Rule::sub => BinaryOp::Sub,
                Rule::mul => BinaryOp::Mul,
                Rule::div => BinaryOp::Div,
                _ => BinaryOp::Rem,
            };
            let depth = lhs.depth.max(rhs.depth) + 1;
            make(
                Kind::Binary(binary, Box::new(lhs), Box::new(rhs)),
                span,
                depth,
            )
        })
        .parse(pairs)
}

fn build_primary(pair: Pair<'_, Rule>) -> Result<Node, ExprError> {
    let span = span_of(&pair);
    match pair.as_rule() {
        Rule::expr => build_expr(pair),
        Rule::integer => match pair.as_str().parse::<i64>() {
            Ok(i) => make(Kind::Literal(Value::Int(i)), span, 1),
            Err(_) => Err(ExprError::new(
                "E_EXPR_SYNTAX",
                span,
                "integer literal is too large",
            )),
        },
        Rule::decimal => match Decimal::from_str(pair.as_str()) {
            Ok(d) => make(Kind::Literal(Value::Decimal(d)), span, 1),
            Err(_) => Err(ExprError::new(
                "E_EXPR_SYNTAX",
                span,
                "decimal literal has too many digits",
            )),
        },
        Rule::boolean => make(Kind::Literal(Value::Bool(pair.as_str() == "true")), span, 1),
        Rule::null => make(Kind::Literal(Value::Null), span, 1),
        Rule::string => {
            let inner = pair.into_inner().next().map(|p| p.as_str()).unwrap_or("");
            make(Kind::Literal(Value::Str(unescape(inner))), span, 1)
        }
        Rule::ident => make(Kind::Variable(pair.as_str().to_string()), span, 1),
        Rule::list => {
            let items = pair
                .into_inner()
                .map(build_expr)
                .collect::<Result<Vec<_>, _>>()?;
            let depth = items.iter().map(|n| n.depth).max().unwrap_or(0) + 1;
            make(Kind::List(items), span, depth)
        }
        Rule::call => {
            let mut inner = pair.into_inner();
            let name_pair = inner
                .next()
                .ok_or_else(|| ExprError::new("E_EXPR_SYNTAX", span, "missing function name"))?;
            let name_span = span_of(&name_pair);
            let name = name_pair.as_str().to_string();
            let mut args = Vec::new();
            for arg in inner {
                args.push(build_arg(arg)?);
            }
            let depth = args.iter().map(Arg::depth).max().unwrap_or(0) + 1;
            make(
                Kind::Call {
                    name,
                    name_span,
                    args,
                },
                span,
                depth,
            )
        }
        other => Err(ExprError::new(
            "E_EXPR_SYNTAX",
            span,
            format!("unexpected {other:?}"),
        )),
    }
}

fn build_arg(pair: Pair<'_, Rule>) -> Result<Arg, ExprError> {
    if pair.as_rule() == Rule::lambda {
        let span = span_of(&pair);
        let mut inner = pair.into_inner();
        let (Some(param), Some(body)) = (inner.next(), inner.next()) else {
            return Err(ExprError::new("E_EXPR_SYNTAX", span, "incomplete lambda"));
        };
        return Ok(Arg::Lambda {
            param: param.as_str().to_string(),
            param_span: span_of(&param),
            body: build_expr(body)?,
        });
    }
    Ok(Arg::Expr(build_expr(pair)?))
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}
