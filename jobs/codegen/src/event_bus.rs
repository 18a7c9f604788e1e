//! Stage 4.5, event-bus integration for Effect and Orchestrator nodes: add the `EventBusMixin`
//! module and make the node class inherit it (publisher set-up, initialize/shutdown, introspection
//! on start). The node module is patched by its syntax tree, whoever wrote it (template or model).

use crate::parse::NodeType;
use crate::syntax::PythonParser;

/// Why a node module could not be integrated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrationError {
    #[error("no top-level class {0} to integrate")]
    NoClass(String),
}

/// `source` with `from .event_bus import EventBusMixin` after its last top-level import and
/// `EventBusMixin` as the first base of `class_name`. Unchanged when already integrated.
/// `node_type` keys the incremental parse: the previous node module of the type is the closest
/// text to parse from.
pub fn integrate(
    source: &str,
    class_name: &str,
    node_type: NodeType,
    parser: &mut PythonParser,
) -> Result<String, IntegrationError> {
    let tree = parser.parse(&format!("{}/event-bus patch", node_type.as_str()), source);
    let root = tree.root_node();
    let text = |n: tree_sitter::Node<'_>| n.utf8_text(source.as_bytes()).unwrap_or("");
    let mut cursor = root.walk();
    let top: Vec<_> = root.named_children(&mut cursor).collect();
    let class = top
        .iter()
        .map(|n| {
            if n.kind() == "decorated_definition" {
                n.child_by_field_name("definition").unwrap_or(*n)
            } else {
                *n
            }
        })
        .find(|n| {
            n.kind() == "class_definition"
                && n.child_by_field_name("name").map(text) == Some(class_name)
        })
        .ok_or_else(|| IntegrationError::NoClass(class_name.to_string()))?;
    let supers = class.child_by_field_name("superclasses");
    if let Some(s) = supers
        && text(s).contains("EventBusMixin")
    {
        return Ok(source.to_string());
    }
    let mut edits: Vec<(usize, String)> = Vec::new();
    match supers {
        Some(s) => {
            let mut c = s.walk();
            let empty = s.named_children(&mut c).next().is_none();
            edits.push((
                s.start_byte() + 1,
                if empty {
                    "EventBusMixin"
                } else {
                    "EventBusMixin, "
                }
                .into(),
            ));
        }
        None => {
            let name = class.child_by_field_name("name").expect("found by name");
            edits.push((name.end_byte(), "(EventBusMixin)".into()));
        }
    }
    let last_import = top.iter().rfind(|n| {
        matches!(
            n.kind(),
            "import_statement" | "import_from_statement" | "future_import_statement"
        ) && n.end_byte() < class.start_byte()
    });
    match last_import {
        Some(i) => edits.push((
            i.end_byte(),
            "\nfrom .event_bus import EventBusMixin".into(),
        )),
        None => {
            // After the module docstring, if any.
            let at = top
                .first()
                .filter(|n| {
                    n.kind() == "expression_statement"
                        && n.named_child(0).is_some_and(|s| s.kind() == "string")
                })
                .map(|n| n.end_byte())
                .unwrap_or(0);
            let text = if at == 0 {
                "from .event_bus import EventBusMixin\n"
            } else {
                "\n\nfrom .event_bus import EventBusMixin"
            };
            edits.push((at, text.into()));
        }
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = source.to_string();
    for (at, insert) in edits {
        out.insert_str(at, &insert);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{IntegrationError, NodeType, PythonParser, integrate};

    #[test]
    fn the_mixin_is_imported_and_becomes_the_first_base() {
        let src = "\"\"\"Doc.\"\"\"\nimport asyncio\nfrom .models.input import In\n\n\nclass NodeXEffect:\n    pass\n";
        let out = integrate(
            src,
            "NodeXEffect",
            NodeType::Effect,
            &mut PythonParser::new(),
        )
        .unwrap();
        assert_eq!(
            out,
            "\"\"\"Doc.\"\"\"\nimport asyncio\nfrom .models.input import In\nfrom .event_bus import EventBusMixin\n\n\nclass NodeXEffect(EventBusMixin):\n    pass\n"
        );
        assert_eq!(
            integrate(
                &out,
                "NodeXEffect",
                NodeType::Effect,
                &mut PythonParser::new()
            )
            .unwrap(),
            out,
            "idempotent"
        );
        let out = integrate(
            "class NodeXEffect(Base):\n    pass\n",
            "NodeXEffect",
            NodeType::Effect,
            &mut PythonParser::new(),
        )
        .unwrap();
        assert_eq!(
            out,
            "from .event_bus import EventBusMixin\nclass NodeXEffect(EventBusMixin, Base):\n    pass\n"
        );
        assert_eq!(
            integrate(
                "class Other:\n    pass\n",
                "NodeXEffect",
                NodeType::Effect,
                &mut PythonParser::new()
            ),
            Err(IntegrationError::NoClass("NodeXEffect".into()))
        );
    }
}
