//! Checks of the compiled graph: every node reachable from the start, an end
//! reachable from every node, and conditional `next` lists without a default
//! accepted only when their conditions are provably exhaustive.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use jiuzhu_rules::Type;
use jiuzhu_rules::expr::TypeEnv;

use super::diagnostic::codes;
use super::model::{MessageDecl, Node, NodeIdx, NodeKind};
use super::read::Ctx;
use super::yaml::Pos;

/// The nodes control may move to from `node` by its own transitions.
pub fn successors(node: &Node) -> Vec<NodeIdx> {
    let mut out: Vec<NodeIdx> = node.completion.next.iter().map(|t| t.target).collect();
    match &node.kind {
        NodeKind::Parallel { branches } => out.extend(branches),
        NodeKind::Task(task) => out.extend(
            task.on
                .iter()
                .flat_map(|h| h.completion.next.iter().map(|t| t.target)),
        ),
        NodeKind::Receive(receive) => {
            out.extend(
                receive
                    .handlers
                    .iter()
                    .flat_map(|h| h.completion.next.iter().map(|t| t.target)),
            );
            if let Some((_, completion)) = &receive.timeout {
                out.extend(completion.next.iter().map(|t| t.target));
            }
        }
        NodeKind::Batch(batch) => out.extend(batch.done.completion.next.iter().map(|t| t.target)),
        _ => {}
    }
    out
}

/// Reports unreachable nodes and nodes from which no end can be reached.
pub fn check(
    ctx: &mut Ctx<'_>,
    nodes: &[Node],
    at: &[Pos],
    start: NodeIdx,
    messages: &[MessageDecl],
) {
    let edges: Vec<Vec<NodeIdx>> = nodes.iter().map(successors).collect();
    let position = |i: NodeIdx| at.get(i).copied().unwrap_or_default();

    // An interrupting message may jump to its `goto` node from anywhere.
    let mut reachable = vec![false; nodes.len()];
    let mut queue: VecDeque<NodeIdx> = std::iter::once(start)
        .chain(messages.iter().filter_map(|m| m.goto))
        .collect();
    while let Some(i) = queue.pop_front() {
        if i >= nodes.len() || reachable[i] {
            continue;
        }
        reachable[i] = true;
        queue.extend(edges[i].iter().copied());
    }
    let start_id = nodes.get(start).map_or("", |n| n.id.as_str());
    for (i, node) in nodes.iter().enumerate() {
        if !reachable[i] {
            ctx.error_hint(
                &position(i),
                codes::E_UNREACHABLE,
                format!(
                    "node `{}` cannot be reached from the start node `{start_id}`",
                    node.id
                ),
                "point a `next` (or a branch) at it, or remove it",
            );
        }
    }

    // Fixpoint: a node can end when it is an end node or leads to one that can.
    let mut can_end: Vec<bool> = nodes
        .iter()
        .map(|n| matches!(n.kind, NodeKind::End { .. }))
        .collect();
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..nodes.len() {
            if !can_end[i]
                && edges[i]
                    .iter()
                    .any(|&j| can_end.get(j).copied().unwrap_or(false))
            {
                can_end[i] = true;
                changed = true;
            }
        }
    }
    // One diagnostic per group of stuck nodes that lead only to each other.
    let stuck: BTreeSet<NodeIdx> = (0..nodes.len())
        .filter(|&i| reachable[i] && !can_end[i])
        .collect();
    let mut neighbours: BTreeMap<NodeIdx, BTreeSet<NodeIdx>> = BTreeMap::new();
    for &i in &stuck {
        for &j in &edges[i] {
            if stuck.contains(&j) {
                neighbours.entry(i).or_default().insert(j);
                neighbours.entry(j).or_default().insert(i);
            }
        }
    }
    let mut seen = BTreeSet::new();
    for &first in &stuck {
        if seen.contains(&first) {
            continue;
        }
        let mut group = BTreeSet::new();
        let mut queue = VecDeque::from([first]);
        while let Some(i) = queue.pop_front() {
            if !group.insert(i) {
                continue;
            }
            if let Some(ns) = neighbours.get(&i) {
                queue.extend(ns.iter().copied());
            }
        }
        seen.extend(group.iter().copied());
        let names: Vec<String> = group
            .iter()
            .map(|&i| format!("`{}`", nodes[i].id))
            .collect();
        ctx.error_hint(
            &position(first),
            codes::E_NO_END,
            format!("no end node can be reached from `{}`", nodes[first].id),
            format!(
                "{} only lead to each other; add a transition to an end node",
                names.join(", ")
            ),
        );
    }
}

/// Reports each loop control goes round without ever waiting: a cycle of nodes none of
/// which is a task, receive or timer. Such a loop runs within one step, so a mistake in
/// its condition can only ever fail the case at the step's node-entry budget; even a
/// loop with a conditional way out is refused (one pass per member of a list is an
/// `emit` item with `for_each`). A loop with no transition out at all is `E_NO_END`'s.
pub fn check_loops(ctx: &mut Ctx<'_>, nodes: &[Node], at: &[Pos]) {
    let waits = |node: &Node| {
        matches!(
            node.kind,
            NodeKind::Task(_) | NodeKind::Timer(_) | NodeKind::Receive(_) | NodeKind::Batch(_)
        )
    };
    // The transitions taken within one step: out of a node that does not wait.
    let edges: Vec<Vec<NodeIdx>> = nodes
        .iter()
        .map(|node| {
            if waits(node) {
                Vec::new()
            } else {
                successors(node)
                    .into_iter()
                    .filter(|&j| nodes.get(j).is_some_and(|n| !waits(n)))
                    .collect()
            }
        })
        .collect();
    // What each node leads to in one or more such transitions (at most 1,000 nodes).
    let reach: Vec<Vec<bool>> = (0..nodes.len())
        .map(|i| {
            let mut seen = vec![false; nodes.len()];
            let mut queue: VecDeque<NodeIdx> = edges[i].iter().copied().collect();
            while let Some(j) = queue.pop_front() {
                if j < nodes.len() && !seen[j] {
                    seen[j] = true;
                    queue.extend(edges[j].iter().copied());
                }
            }
            seen
        })
        .collect();
    let mut reported = vec![false; nodes.len()];
    for first in 0..nodes.len() {
        if reported[first] || !reach[first][first] {
            continue;
        }
        let group: Vec<NodeIdx> = (0..nodes.len())
            .filter(|&j| j == first || (reach[first][j] && reach[j][first]))
            .collect();
        for &j in &group {
            reported[j] = true;
        }
        let inside = |j: &NodeIdx| group.contains(j);
        let any_edge_out = group
            .iter()
            .any(|&j| successors(&nodes[j]).iter().any(|t| !inside(t)));
        if !any_edge_out {
            continue;
        }
        let names: Vec<String> = group
            .iter()
            .map(|&j| format!("`{}`", nodes[j].id))
            .collect();
        ctx.error_hint(
            &at.get(first).copied().unwrap_or_default(),
            codes::E_LOOP_WITHOUT_WAIT,
            format!(
                "{} form a loop with no task, receive or timer on it: it would go round within one step",
                names.join(", ")
            ),
            "put a task, receive or timer on the loop; to act once per element of a list, give an `emit` item `for_each`",
        );
    }
}

/// True when a simple analysis proves that one of `conditions` always holds:
/// a condition and its negation (`x` / `not x`, `a == b` / `a != b`), or
/// `x == 'v'` comparisons covering every value of an enum-typed `x`.
pub fn exhaustive(conditions: &[String], scope: &dyn TypeEnv) -> bool {
    let mut polarities: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let mut enum_cover: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for condition in conditions {
        let (positive, inner) = polarity(condition);
        let entry = polarities.entry(inner.clone()).or_default();
        if positive {
            entry.0 = true;
        } else {
            entry.1 = true;
        }
        if positive && let Some((path, value)) = enum_comparison(&inner) {
            enum_cover.entry(path).or_default().insert(value);
        }
    }
    if polarities.values().any(|(p, n)| *p && *n) {
        return true;
    }
    enum_cover
        .iter()
        .any(|(path, covered)| match path_type(path, scope) {
            Some(Type::Enum(values)) => values.iter().all(|v| covered.contains(v)),
            Some(Type::Bool) => covered.contains("true") && covered.contains("false"),
            _ => false,
        })
}

/// Normalises a condition into (polarity, positive form).
fn polarity(condition: &str) -> (bool, String) {
    let mut text = strip_parens(&normalise(condition));
    let mut positive = true;
    loop {
        if let Some(rest) = text.strip_prefix('!').filter(|r| !r.starts_with('=')) {
            text = strip_parens(rest);
            positive = !positive;
        } else if let Some(rest) = text
            .strip_prefix("not ")
            .or_else(|| text.strip_prefix("not(").map(|_| &text[3..]))
        {
            text = strip_parens(rest);
            positive = !positive;
        } else {
            break;
        }
    }
    for (op, equal) in [("!=", false), ("==", true)] {
        if let Some((lhs, rhs)) = split_top(&text, op) {
            let (lhs, rhs) = (lhs.to_string(), rhs.to_string());
            return match rhs.as_str() {
                "true" => (positive == equal, lhs),
                "false" => (positive != equal, lhs),
                _ => (positive == equal, format!("{lhs}=={rhs}")),
            };
        }
    }
    (positive, text)
}

/// `path=='v'` → (path, v); also for a bool `path==true`.
fn enum_comparison(inner: &str) -> Option<(String, String)> {
    let (lhs, rhs) = inner.split_once("==")?;
    let (path, literal) = if is_path(lhs) { (lhs, rhs) } else { (rhs, lhs) };
    if !is_path(path) {
        return None;
    }
    let value = literal
        .strip_prefix('\'')
        .and_then(|l| l.strip_suffix('\''))
        .or_else(|| literal.strip_prefix('"').and_then(|l| l.strip_suffix('"')))?;
    Some((path.to_string(), value.to_string()))
}

fn is_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// The declared type at `a.b.c`, following object fields.
fn path_type(path: &str, scope: &dyn TypeEnv) -> Option<Type> {
    let mut parts = path.split('.');
    let mut ty = scope.var_type(parts.next()?)?;
    for part in parts {
        ty = match ty {
            Type::Object { fields, .. } => fields.get(part)?.clone(),
            _ => return None,
        };
    }
    Some(ty)
}

/// Splits at the first top-level (outside brackets and quotes) occurrence of `op`.
fn split_top<'t>(text: &'t str, op: &str) -> Option<(&'t str, &'t str)> {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[') => depth += 1,
            (None, ')' | ']') => depth -= 1,
            (None, _) if depth == 0 && text[i..].starts_with(op) => {
                return Some((&text[..i], &text[i + op.len()..]));
            }
            _ => {}
        }
    }
    None
}

/// Removes one pair of parentheses that encloses the whole text, repeatedly.
fn strip_parens(text: &str) -> String {
    let mut text = text.trim().to_string();
    while text.starts_with('(') && text.ends_with(')') {
        let inner = &text[1..text.len() - 1];
        // Only when the first `(` closes at the very end: `(a) && (b)` stays.
        let mut depth = 0i32;
        let balanced = inner.chars().all(|c| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            depth >= 0
        });
        if !balanced || depth != 0 {
            break;
        }
        text = inner.trim().to_string();
    }
    text
}

/// Drops whitespace except between two word characters, where one space stays;
/// `and`/`or` become `&&`/`||` so both spellings compare equal.
fn normalise(text: &str) -> String {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| match w {
            "and" => "&&".to_string(),
            "or" => "||".to_string(),
            other => other.to_string(),
        })
        .collect();
    let mut out = String::new();
    for word in words {
        let joins =
            out.chars().last().is_some_and(is_word) && word.chars().next().is_some_and(is_word);
        if joins {
            out.push(' ');
        }
        out.push_str(&word);
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}
