//! Missing standard-library imports in a model's part, added before the gates judge it. A small
//! model often calls `hashlib.sha256` or `re.sub` without importing the module: the code is
//! right but fails its first example with a `NameError`. Like an editor's auto-import, a name
//! is imported only when it is certainly the module: it is in [`STDLIB`], and every use of it
//! in the module is `name.attribute` (never bound, assigned, imported or passed on).

use tree_sitter::Node;

use crate::gates::walk;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(code: &str) -> (String, Vec<String>) {
        add_stdlib_imports(code, &mut PythonParser::new())
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
