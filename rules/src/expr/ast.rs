//! The syntax tree of an expression, with byte spans into its source.

use crate::value::Value;

/// A byte range within the expression source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            offset: start,
            len: end.saturating_sub(start),
        }
    }

    pub fn end(&self) -> usize {
        self.offset + self.len
    }

    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        Span::new(self.offset.min(other.offset), self.end().max(other.end()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

/// One node; `depth` is the height of the subtree (a leaf has depth 1), kept so
/// the depth limit is enforced while building, before anything recurses over it.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub span: Span,
    pub depth: usize,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Literal(Value),
    Variable(String),
    Member(Box<Node>, String),
    Index(Box<Node>, Box<Node>),
    Unary(UnaryOp, Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    Ternary(Box<Node>, Box<Node>, Box<Node>),
    List(Vec<Node>),
    Call {
        name: String,
        name_span: Span,
        args: Vec<Arg>,
    },
}

/// A function argument: a plain expression or a lambda `x => body` (list functions only).
#[derive(Debug, Clone)]
pub enum Arg {
    Expr(Node),
    Lambda {
        param: String,
        param_span: Span,
        body: Node,
    },
}

impl Arg {
    pub fn span(&self) -> Span {
        match self {
            Arg::Expr(node) => node.span,
            Arg::Lambda {
                param_span, body, ..
            } => param_span.join(body.span),
        }
    }

    pub fn depth(&self) -> usize {
        match self {
            Arg::Expr(node) => node.depth,
            Arg::Lambda { body, .. } => body.depth + 1,
        }
    }
}
