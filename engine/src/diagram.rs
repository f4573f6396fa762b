//! Mermaid `flowchart TD` diagrams of compiled definitions, for `jiuzhu diagram`.
//!
//! Nodes are labelled with their Chinese `name`; the shape shows the kind
//! (task rectangle, rule subroutine, compute rounded, choice/receive rhombus,
//! parallel/join hexagon, timer circle, end stadium). Edges carry the condition
//! source, the message name or the timeout; instance-wide messages appear as a
//! note, with dotted edges to the nodes they jump to.

use std::fmt::Write;

use crate::lang::model::{Completion, Definition, NodeKind, TimerSpec};

/// The Mermaid text of `definition`.
pub fn mermaid(definition: &Definition) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "flowchart TD");
    let _ = writeln!(
        out,
        "    %% {} ({})",
        escape(&definition.name),
        definition.id
    );
    for node in &definition.nodes {
        let label = escape(&node.name);
        let id = mermaid_id(&node.id);
        let shape = match &node.kind {
            NodeKind::Task(_) => format!("{id}[\"{label}\"]"),
            NodeKind::Rule(rule) => format!("{id}[[\"{label}<br/>{}\"]]", escape(&rule.program)),
            NodeKind::Compute => format!("{id}(\"{label}\")"),
            NodeKind::Choice | NodeKind::Receive(_) => format!("{id}{{\"{label}\"}}"),
            NodeKind::Batch(_) => format!("{id}[/\"{label}\"/]"),
            NodeKind::Parallel { .. } | NodeKind::Join { .. } => format!("{id}{{{{\"{label}\"}}}}"),
            NodeKind::Timer(spec) => format!("{id}((\"{label}<br/>{}\"))", timer_text(spec)),
            NodeKind::End { .. } => format!("{id}([\"{label}\"])"),
        };
        let _ = writeln!(out, "    {shape}");
    }
    let start = definition
        .nodes
        .get(definition.start)
        .map(|n| mermaid_id(&n.id));
    if let Some(start) = start {
        let _ = writeln!(out, "    start_((\"开始\")) --> {start}");
    }
    for node in &definition.nodes {
        let from = mermaid_id(&node.id);
        match &node.kind {
            NodeKind::Parallel { branches } => {
                for &branch in branches {
                    edge(&mut out, &from, definition, branch, None, false);
                }
            }
            NodeKind::Receive(receive) => {
                for handler in &receive.handlers {
                    for t in &handler.completion.next {
                        let label = match &t.condition {
                            Some(c) => format!("{}: {}", handler.name, c.source()),
                            None => handler.name.clone(),
                        };
                        edge(&mut out, &from, definition, t.target, Some(&label), false);
                    }
                }
                if let Some((spec, completion)) = &receive.timeout {
                    let label = format!("超时 {}", timer_text(spec));
                    transitions(&mut out, &from, definition, completion, Some(&label));
                }
            }
            NodeKind::Batch(batch) => {
                transitions(&mut out, &from, definition, &batch.done.completion, None);
            }
            NodeKind::Task(task) => {
                transitions(&mut out, &from, definition, &node.completion, None);
                for handler in &task.on {
                    let label = format!("{}（中断）", handler.name);
                    transitions(
                        &mut out,
                        &from,
                        definition,
                        &handler.completion,
                        Some(&label),
                    );
                }
            }
            _ => transitions(&mut out, &from, definition, &node.completion, None),
        }
    }
    if !definition.messages.is_empty() {
        let lines: Vec<String> = definition
            .messages
            .iter()
            .map(|m| match &m.label {
                Some(label) => format!("{} {}", escape(&m.name), escape(label)),
                None => escape(&m.name),
            })
            .collect();
        let _ = writeln!(
            out,
            "    messages_>\"全程消息<br/>{}\"]",
            lines.join("<br/>")
        );
        for message in &definition.messages {
            if let Some(target) = message.goto {
                edge(
                    &mut out,
                    "messages_",
                    definition,
                    target,
                    Some(&message.name),
                    true,
                );
            }
        }
    }
    out
}

fn transitions(
    out: &mut String,
    from: &str,
    definition: &Definition,
    completion: &Completion,
    prefix: Option<&str>,
) {
    let conditional = completion.next.iter().any(|t| t.condition.is_some());
    for t in &completion.next {
        let label = match (&t.condition, prefix) {
            (Some(c), Some(p)) => Some(format!("{p}: {}", c.source())),
            (Some(c), None) => Some(c.source().to_string()),
            (None, Some(p)) => Some(p.to_string()),
            (None, None) if conditional => Some("否则".to_string()),
            (None, None) => None,
        };
        edge(out, from, definition, t.target, label.as_deref(), false);
    }
}

fn edge(
    out: &mut String,
    from: &str,
    definition: &Definition,
    target: usize,
    label: Option<&str>,
    dotted: bool,
) {
    let Some(to) = definition.nodes.get(target).map(|n| mermaid_id(&n.id)) else {
        return;
    };
    let arrow = if dotted { "-.->" } else { "-->" };
    let _ = match label {
        Some(label) => writeln!(out, "    {from} {arrow}|\"{}\"| {to}", escape(label)),
        None => writeln!(out, "    {from} {arrow} {to}"),
    };
}

fn timer_text(spec: &TimerSpec) -> String {
    match spec {
        TimerSpec::After(duration) => duration.to_string(),
        TimerSpec::Until(expr) => format!("until {}", escape(expr.source())),
    }
}

/// Node ids are prefixed: Mermaid reserves words such as `end`.
fn mermaid_id(id: &str) -> String {
    format!("n_{id}")
}

/// Text inside a quoted Mermaid label: quotes as entities, one line.
fn escape(text: &str) -> String {
    text.replace('"', "#quot;")
        .replace(['\n', '\r'], " ")
        .trim()
        .to_string()
}
