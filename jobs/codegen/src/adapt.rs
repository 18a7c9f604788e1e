//! A stored pattern's code adapted to another request's field names. The same work is often
//! asked for under other names (`text` in one request, `sentence` in the next); code that reads
//! `payload["text"]` fails the second request's examples on a `KeyError` though its logic is
//! right. When the names differ by exactly one field on a side, the key is renamed; verified
//! reuse then runs the adapted code against the request's examples, which decide.

use std::collections::BTreeSet;

use tree_sitter::Node;

use crate::gates::walk;
use crate::spec::DeclaredField;
use crate::syntax::PythonParser;

/// One key renamed in stored code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub from: String,
    pub to: String,
}

/// `code` with its payload keys and result keys renamed to the request's declared `inputs` and
/// `outputs`, and the renames made; `None` when there is nothing to rename, the code does not
/// parse, or a side's names do not differ by exactly one (anything else would be a guess).
/// Every plain string literal equal to a renamed key is renamed: the key is read or written
/// through such literals, and a literal equal to a field name is that field.
pub fn adapt_field_names(
    code: &str,
    inputs: &[DeclaredField],
    outputs: &[DeclaredField],
    parser: &mut PythonParser,
) -> Option<(String, Vec<Rename>)> {
    let tree = parser.parse("adapt", code);
    let root = tree.root_node();
    if root.has_error() {
        return None;
    }
    let keys = Keys::of(root, code);
    let mut renames = Vec::new();
    renames.extend(one_to_one(&keys.read, inputs));
    let written: BTreeSet<&str> = keys.written.difference(&keys.read).copied().collect();
    renames.extend(one_to_one(&written, outputs));
    if renames.is_empty() {
        return None;
    }
    Some((rename_literals(root, code, &renames), renames))
}

/// The rename of a side when the code's keys and the declared names differ by exactly one each.
fn one_to_one(used: &BTreeSet<&str>, declared: &[DeclaredField]) -> Option<Rename> {
    let declared: BTreeSet<&str> = declared.iter().map(|f| f.name.as_str()).collect();
    let extra: Vec<&&str> = used.difference(&declared).collect();
    let missing: Vec<&&str> = declared.difference(used).collect();
    match (extra.as_slice(), missing.as_slice()) {
        ([from], [to]) => Some(Rename {
            from: from.to_string(),
            to: to.to_string(),
        }),
        _ => None,
    }
}

/// The keys code reads from its payload (`payload["k"]`, `payload.get("k")`) and the string keys
/// of the dicts it builds (`{"k": ...}`, `result["k"]`).
struct Keys<'c> {
    read: BTreeSet<&'c str>,
    written: BTreeSet<&'c str>,
}

impl<'c> Keys<'c> {
    fn of(root: Node<'_>, code: &'c str) -> Self {
        let mut keys = Keys {
            read: BTreeSet::new(),
            written: BTreeSet::new(),
        };
        walk(root, &mut |n| {
            match n.kind() {
                "subscript" => {
                    let key = literal(n.child_by_field_name("subscript"), code);
                    if is_payload(n.child_by_field_name("value"), code) {
                        keys.read.extend(key);
                    } else {
                        // `result["k"] = ...`: a key of the dict built.
                        keys.written.extend(key);
                    }
                }
                "call" => {
                    if let Some(key) = payload_get(n, code) {
                        keys.read.insert(key);
                    }
                }
                "pair" => keys
                    .written
                    .extend(literal(n.child_by_field_name("key"), code)),
                _ => {}
            }
            true
        });
        keys
    }
}

/// `payload.get("k", ...)`'s key.
fn payload_get<'c>(call: Node<'_>, code: &'c str) -> Option<&'c str> {
    let function = call.child_by_field_name("function")?;
    let method = function.child_by_field_name("attribute")?;
    if function.kind() != "attribute"
        || method.utf8_text(code.as_bytes()).ok()? != "get"
        || !is_payload(function.child_by_field_name("object"), code)
    {
        return None;
    }
    let args = call.child_by_field_name("arguments")?;
    literal(args.named_child(0), code)
}

fn is_payload(n: Option<Node<'_>>, code: &str) -> bool {
    n.is_some_and(|n| n.kind() == "identifier" && n.utf8_text(code.as_bytes()) == Ok("payload"))
}

/// The text of a plain string literal (no f-string, no escapes, no concatenation).
fn literal<'c>(n: Option<Node<'_>>, code: &'c str) -> Option<&'c str> {
    let n = n?;
    if n.kind() != "string" {
        return None;
    }
    let mut cursor = n.walk();
    let parts: Vec<Node<'_>> = n.named_children(&mut cursor).collect();
    match parts.as_slice() {
        [start, content, _end] if content.kind() == "string_content" => {
            let prefix = start.utf8_text(code.as_bytes()).ok()?;
            let plain = !prefix.contains(['f', 'F', 'b', 'B']);
            let text = content.utf8_text(code.as_bytes()).ok()?;
            (plain && !text.contains('\\')).then_some(text)
        }
        _ => None,
    }
}

/// `code` with the content of every plain string literal equal to a rename's `from` replaced.
fn rename_literals(root: Node<'_>, code: &str, renames: &[Rename]) -> String {
    let mut edits: Vec<(usize, usize, &str)> = Vec::new();
    walk(root, &mut |n| {
        if n.kind() == "string"
            && let Some(text) = literal(Some(n), code)
            && let Some(r) = renames.iter().find(|r| r.from == text)
        {
            let content = n.named_child(1).expect("a literal has its content");
            edits.push((content.start_byte(), content.end_byte(), &r.to));
        }
        n.kind() != "string"
    });
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = code.to_string();
    for (start, end, to) in edits {
        out.replace_range(start..end, to);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Fields;

    fn fields(names: &[&str]) -> Vec<DeclaredField> {
        let json: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .map(|n| (n.to_string(), serde_json::json!("str")))
            .collect();
        let f: Fields = serde_json::from_value(json.into()).unwrap();
        f.0
    }

    fn adapt(code: &str, inputs: &[&str], outputs: &[&str]) -> Option<(String, Vec<Rename>)> {
        let mut parser = PythonParser::new();
        adapt_field_names(code, &fields(inputs), &fields(outputs), &mut parser)
    }

    const PALINDROME: &str = "def run(operation: str, payload: dict[str, object]) -> dict[str, object]:\n    \"\"\"Whether the text reads the same backwards.\"\"\"\n    text: str = payload[\"text\"]\n    if not isinstance(text, str):\n        raise ValueError(\"text must be a string\")\n    s = [c.lower() for c in text if c.isalnum()]\n    return {\"palindrome\": s == s[::-1]}\n";

    #[test]
    fn a_payload_key_differing_by_one_name_is_renamed_everywhere_it_is_a_literal() {
        let (code, renames) = adapt(PALINDROME, &["sentence"], &["palindrome"]).unwrap();
        assert_eq!(
            renames,
            [Rename {
                from: "text".into(),
                to: "sentence".into()
            }]
        );
        assert!(code.contains("text: str = payload[\"sentence\"]"), "{code}");
        // Longer strings that mention the name are left alone.
        assert!(code.contains("\"text must be a string\""), "{code}");
    }

    #[test]
    fn result_keys_and_get_reads_are_renamed_too() {
        let code = "def run(operation, payload):\n    n = payload.get('net', 0)\n    r = {'tax': n * 0.2}\n    r['gross'] = n + r['tax']\n    return r\n";
        let (out, renames) = adapt(code, &["amount"], &["vat", "gross"]).unwrap();
        assert_eq!(renames.len(), 2, "{renames:?}");
        assert!(out.contains("payload.get('amount', 0)"), "{out}");
        assert!(
            out.contains("{'vat': n * 0.2}") && out.contains("r['vat']"),
            "{out}"
        );
    }

    #[test]
    fn nothing_is_renamed_when_the_names_match_or_the_mapping_is_a_guess() {
        assert_eq!(adapt(PALINDROME, &["text"], &["palindrome"]), None);
        // Two unknown names against two declared: which is which is a guess.
        let two = "def run(operation, payload):\n    return {'s': payload['a'] + payload['b']}\n";
        assert_eq!(adapt(two, &["x", "y"], &["s"]), None);
        assert_eq!(adapt("def run(:\n", &["x"], &["y"]), None);
        // An f-string is not a key literal.
        let f = "def run(operation, payload):\n    return {f'v': payload['a']}\n";
        let (out, _) = adapt(f, &["b"], &["w"]).unwrap();
        assert!(out.contains("{f'v': payload['b']}"), "{out}");
    }
}
