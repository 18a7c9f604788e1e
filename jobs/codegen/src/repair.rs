//! What a small model's part predictably leaves out, put back before the gates judge it. Each
//! repair is certain or not made, and each is reported in the stage's warnings.
//! - Standard-library imports: a model often calls `hashlib.sha256` or `re.sub` without
//!   importing the module, right code that would fail its first example with a `NameError`.
//!   Like an editor's auto-import, a name is imported only when it is certainly the module: it
//!   is in [`STDLIB`], and every use of it is `name.attribute` (never bound or imported).
//! - The stub's field reads: the stub given to the model begins with one line per declared input
//!   field (`net: float = payload["net"]`); a model that answers with the body alone uses `net`
//!   without them. A declared field used in `run` but bound nowhere gets its line back.

use tree_sitter::Node;

use crate::gates::walk;
use crate::spec::DeclaredField;
use crate::syntax::PythonParser;

/// Standard-library modules a node's logic uses for computation. Modules that reach outside the
/// process (os, socket, subprocess, ...) are left to the model to import on purpose.
const STDLIB: &[&str] = &[
    "base64",
    "binascii",
    "bisect",
    "calendar",
    "cmath",
    "collections",
    "copy",
    "csv",
    "datetime",
    "decimal",
    "difflib",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "ipaddress",
    "itertools",
    "json",
    "math",
    "operator",
    "random",
    "re",
    "secrets",
    "statistics",
    "string",
    "struct",
    "textwrap",
    "time",
    "unicodedata",
    "uuid",
    "zlib",
];

/// `code` with an `import` for each standard-library module it uses but never imports (after
/// the module docstring and `__future__` imports), and the modules added, in order. Code that
/// does not parse is returned unchanged: the assembly gate reports its syntax error.
pub fn add_stdlib_imports(code: &str, parser: &mut PythonParser) -> (String, Vec<String>) {
    let tree = parser.parse("autoimport", code);
    let root = tree.root_node();
    if root.has_error() {
        return (code.to_string(), Vec::new());
    }
    let missing = unimported_modules(root, code);
    if missing.is_empty() {
        return (code.to_string(), missing);
    }
    let at = insertion_point(root, code);
    let lines: String = missing.iter().map(|m| format!("import {m}\n")).collect();
    let (head, tail) = code.split_at(at);
    let sep = if head.is_empty() || head.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    (format!("{head}{sep}{lines}{tail}"), missing)
}

/// [`STDLIB`] names used only as `name.attribute`, sorted.
fn unimported_modules(root: Node<'_>, code: &str) -> Vec<String> {
    let mut as_module = std::collections::BTreeSet::new();
    let mut otherwise = std::collections::BTreeSet::new();
    walk(root, &mut |n| {
        if n.kind() == "identifier" {
            let name = n.utf8_text(code.as_bytes()).unwrap_or("");
            if STDLIB.contains(&name) {
                let object_of_attribute = n.parent().is_some_and(|p| {
                    p.kind() == "attribute" && p.child_by_field_name("object") == Some(n)
                });
                if object_of_attribute {
                    as_module.insert(name.to_string());
                } else {
                    otherwise.insert(name.to_string());
                }
            }
        }
        true
    });
    as_module.difference(&otherwise).cloned().collect()
}

/// The byte offset of the first top-level statement that is neither the module docstring, a
/// comment nor a `__future__` import (the end of the code when there is none).
fn insertion_point(root: Node<'_>, code: &str) -> usize {
    let mut cursor = root.walk();
    let mut first = true;
    for top in root.named_children(&mut cursor) {
        let docstring = first
            && top.kind() == "expression_statement"
            && top.named_child(0).is_some_and(|s| s.kind() == "string");
        first = false;
        if !(docstring || matches!(top.kind(), "comment" | "future_import_statement")) {
            return top.start_byte();
        }
    }
    code.len()
}

/// `code` with the read of each declared `fields` entry that `run` uses but nothing binds, at
/// the top of `run`'s body (after its docstring), and the fields restored. Code that does not
/// parse, or has no top-level `run`, is returned unchanged.
pub fn restore_field_reads(
    code: &str,
    fields: &[DeclaredField],
    parser: &mut PythonParser,
) -> (String, Vec<String>) {
    let unchanged = || (code.to_string(), Vec::new());
    let tree = parser.parse("field-reads", code);
    let root = tree.root_node();
    let Some(body) = (!root.has_error()).then(|| run_body(root, code)).flatten() else {
        return unchanged();
    };
    let (mut used, mut bound) = (Vec::new(), Vec::new());
    walk(root, &mut |n| {
        if n.kind() == "identifier" {
            let name = n.utf8_text(code.as_bytes()).unwrap_or("");
            if is_binding(n) {
                bound.push(name);
            } else if within(n, body) && is_load(n) {
                used.push(name);
            }
        }
        true
    });
    let missing: Vec<&DeclaredField> = fields
        .iter()
        .filter(|f| used.contains(&f.name.as_str()) && !bound.contains(&f.name.as_str()))
        .collect();
    let Some(first) = first_statement_after_docstring(body) else {
        return unchanged();
    };
    if missing.is_empty() {
        return unchanged();
    }
    let indent = " ".repeat(first.start_position().column);
    let at = first.start_byte() - first.start_position().column;
    let reads: String = missing
        .iter()
        .map(|f| {
            format!(
                "{indent}{name}: {ty} = payload[\"{name}\"]\n",
                name = f.name,
                ty = f.ty
            )
        })
        .collect();
    let out = format!("{}{reads}{}", &code[..at], &code[at..]);
    (out, missing.iter().map(|f| f.name.clone()).collect())
}

/// The block of the top-level `def run` (or `async def run`).
fn run_body<'t>(root: Node<'t>, code: &str) -> Option<Node<'t>> {
    let mut cursor = root.walk();
    let run = root.named_children(&mut cursor).find_map(|top| {
        let def = match top.kind() {
            "decorated_definition" => top.child_by_field_name("definition")?,
            _ => top,
        };
        let name = def.child_by_field_name("name")?;
        (def.kind() == "function_definition" && name.utf8_text(code.as_bytes()).ok()? == "run")
            .then_some(def)
    })?;
    run.child_by_field_name("body")
}

/// The body's first statement that is not its docstring; none when the docstring is all.
fn first_statement_after_docstring(body: Node<'_>) -> Option<Node<'_>> {
    let mut cursor = body.walk();
    let mut statements = body
        .named_children(&mut cursor)
        .filter(|n| n.kind() != "comment");
    let first = statements.next()?;
    let docstring = first.kind() == "expression_statement"
        && first.named_child(0).is_some_and(|s| s.kind() == "string");
    if docstring {
        statements.next()
    } else {
        Some(first)
    }
}

fn within(n: Node<'_>, outer: Node<'_>) -> bool {
    outer.start_byte() <= n.start_byte() && n.end_byte() <= outer.end_byte()
}

/// Not an attribute's name (`x.net`) nor a keyword argument's (`f(net=1)`).
fn is_load(n: Node<'_>) -> bool {
    n.parent().is_none_or(|p| {
        let field = |name| p.child_by_field_name(name) == Some(n);
        !((p.kind() == "attribute" && field("attribute"))
            || (p.kind() == "keyword_argument" && field("name")))
    })
}

/// Whether `n` is bound where it stands: an assignment's or a loop's target, a parameter, an
/// import, a definition's name, a walrus, an `as` target, a global or nonlocal.
fn is_binding(n: Node<'_>) -> bool {
    let mut child = n;
    while let Some(p) = child.parent() {
        let field = |name| p.child_by_field_name(name) == Some(child);
        let binds = match p.kind() {
            "assignment" | "augmented_assignment" | "for_statement" | "for_in_clause" => {
                field("left")
            }
            "function_definition" | "class_definition" => field("name"),
            "named_expression" => field("name"),
            "parameters"
            | "lambda_parameters"
            | "import_statement"
            | "import_from_statement"
            | "as_pattern_target"
            | "global_statement"
            | "nonlocal_statement" => true,
            _ => false,
        };
        if binds {
            return true;
        }
        if matches!(p.kind(), "block" | "module" | "call" | "subscript") {
            return false;
        }
        child = p;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(code: &str) -> (String, Vec<String>) {
        add_stdlib_imports(code, &mut PythonParser::new())
    }

    fn reads_restored(code: &str) -> (String, Vec<String>) {
        let spec: crate::spec::RequestSpec = serde_json::from_value(serde_json::json!({
            "input": {"net": "float", "rate": "float", "tags": "list[str]"}
        }))
        .unwrap();
        restore_field_reads(code, &spec.input.0, &mut PythonParser::new())
    }

    #[test]
    fn a_declared_field_used_but_never_read_gets_its_read_back_after_the_docstring() {
        let code = "def run(operation: str, payload: dict) -> dict:\n    \"\"\"Tax.\"\"\"\n    \
                    tax = round(net * rate / 100, 2)\n    return {'tax': tax}\n";
        let (out, restored) = reads_restored(code);
        assert_eq!(restored, ["net", "rate"]);
        assert_eq!(
            out,
            "def run(operation: str, payload: dict) -> dict:\n    \"\"\"Tax.\"\"\"\n    \
             net: float = payload[\"net\"]\n    rate: float = payload[\"rate\"]\n    \
             tax = round(net * rate / 100, 2)\n    return {'tax': tax}\n"
        );
    }

    #[test]
    fn fields_the_part_binds_or_does_not_use_are_left_alone() {
        for code in [
            "def run(operation, payload):\n    net = payload['net']\n    return {'x': net}\n",
            "def run(operation, payload):\n    net: float = payload['net']\n    return {'x': net}\n",
            "def run(operation, payload):\n    for net in payload['all']:\n        pass\n    return {'x': net}\n",
            "def run(operation, payload, net=1):\n    return {'x': net}\n",
            "def _h(net):\n    return net\n\ndef run(operation, payload):\n    return {'x': payload.net}\n",
            "def run(operation, payload):\n    return f(net=2)\n",
            "def run(operation, payload:\n    return net\n",
            "def helper():\n    return net\n",
        ] {
            assert_eq!(
                reads_restored(code),
                (code.to_string(), Vec::new()),
                "{code}"
            );
        }
    }

    #[test]
    fn a_module_used_but_not_imported_is_imported_after_the_docstring() {
        let code = "\"\"\"Checksums.\"\"\"\n\ndef run(operation, payload):\n    \
                    return {'h': hashlib.sha256(b'').hexdigest(), 'n': math.floor(1.5)}\n";
        let (out, added) = fixed(code);
        assert_eq!(added, ["hashlib", "math"]);
        assert!(
            out.starts_with("\"\"\"Checksums.\"\"\"\n\nimport hashlib\nimport math\ndef run("),
            "{out}"
        );
    }

    #[test]
    fn imported_bound_or_unknown_names_are_left_alone() {
        for code in [
            "import hashlib\n\ndef run(o, p):\n    return hashlib.sha256(b'')\n",
            "from hashlib import sha256\n\ndef run(o, p):\n    return sha256(b'')\n",
            "def run(o, p):\n    re = p['re']\n    return re.value\n",
            "def run(o, re):\n    return re.value\n",
            "def run(o, p):\n    return numpy.zeros(3)\n",
            "def run(o, p):\n    return os.getcwd()\n",
            "def run(o, p:\n    return math.pi\n",
        ] {
            assert_eq!(fixed(code), (code.to_string(), Vec::new()), "{code}");
        }
    }

    #[test]
    fn the_import_goes_after_future_imports_and_into_an_empty_head() {
        let (out, _) = fixed("from __future__ import annotations\nX = re.compile('a')\n");
        assert_eq!(
            out,
            "from __future__ import annotations\nimport re\nX = re.compile('a')\n"
        );
        let (out, _) = fixed("X = re.compile('a')");
        assert_eq!(out, "import re\nX = re.compile('a')");
    }
}
