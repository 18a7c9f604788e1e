//! Python syntax trees for the gates and the event-bus patch, parsed incrementally.
//!
//! A generation's files come from the same templates as the previous generation's of its node
//! type; they differ in names on a tenth of their lines. Tree-sitter re-parses an edited text
//! reusing every subtree the edits did not touch, with a result identical to a fresh parse (the
//! property editors rely on; `incremental_trees_equal_fresh_ones` checks it on every template).
//! Each codegen worker keeps a [`PythonParser`] with the last text and tree per key (node type and
//! file path) and parses the next file of that key as a line diff from it: a fraction of a fresh
//! parse's cost, which was the largest part of the data plane's own work per generation.

use std::collections::HashMap;

use std::time::{Duration, Instant};

use similar::{Algorithm, DiffOp, capture_diff_slices_deadline};
use tree_sitter::{InputEdit, Parser, Point, Tree};

/// Texts further apart than this share too little for an incremental parse to pay.
const MAX_CHANGED_FRACTION: f64 = 0.5;
/// Keys kept per worker (node types × generated Python files, with room for model output).
const MAX_KEYS: usize = 256;
/// A diff of texts with little in common can cost more than the parse it would save (a model's
/// output against the template's): past this, the diff is coarse and the parse fresh.
const DIFF_BUDGET: Duration = Duration::from_millis(2);

fn python_parser() -> Parser {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .expect("the tree-sitter Python grammar matches the tree-sitter version");
    parser
}

/// A Python parser that remembers its previous text and tree per key, to parse the next text of
/// a key incrementally.
pub struct PythonParser {
    parser: Parser,
    previous: HashMap<String, (String, Tree)>,
    /// Parses that reused a previous tree.
    incremental: usize,
}

impl Default for PythonParser {
    fn default() -> Self {
        Self::new()
    }
}

impl PythonParser {
    pub fn new() -> Self {
        Self {
            parser: python_parser(),
            previous: HashMap::new(),
            incremental: 0,
        }
    }

    /// Parse `source` as Python, incrementally from the previous text of `key` when there is one
    /// and it is close enough.
    pub fn parse(&mut self, key: &str, source: &str) -> Tree {
        let old = self
            .previous
            .get(key)
            .and_then(|(text, tree)| edited(text, tree, source));
        self.incremental += usize::from(old.is_some());
        let tree = self
            .parser
            .parse(source, old.as_ref())
            .expect("parsing without a timeout or cancellation returns a tree");
        if self.previous.len() >= MAX_KEYS && !self.previous.contains_key(key) {
            self.previous.clear();
        }
        self.previous
            .insert(key.to_string(), (source.to_string(), tree.clone()));
        tree
    }
}

/// `tree` (of `old`) with the edits that turn `old` into `new` applied, or None when the texts
/// differ too much for reuse.
fn edited(old: &str, tree: &Tree, new: &str) -> Option<Tree> {
    let old_lines = lines(old);
    let new_lines = lines(new);
    let deadline = Instant::now() + DIFF_BUDGET;
    let ops =
        capture_diff_slices_deadline(Algorithm::Myers, &old_lines, &new_lines, Some(deadline));
    let old_starts = starts(&old_lines);
    let new_starts = starts(&new_lines);
    let mut changed = 0usize;
    let mut edits = Vec::new();
    for op in ops {
        if let DiffOp::Equal { .. } = op {
            continue;
        }
        let (o, n) = (op.old_range(), op.new_range());
        let start_byte = old_starts[o.start];
        let old_end_byte = old_starts[o.end];
        let new_len = new_starts[n.end] - new_starts[n.start];
        changed += (old_end_byte - start_byte).max(new_len);
        let start_position = Point::new(o.start, 0);
        edits.push(InputEdit {
            start_byte,
            old_end_byte,
            new_end_byte: start_byte + new_len,
            start_position,
            old_end_position: advance(start_position, &old[start_byte..old_end_byte]),
            new_end_position: advance(start_position, &new[new_starts[n.start]..new_starts[n.end]]),
        });
    }
    if changed as f64 > MAX_CHANGED_FRACTION * new.len().max(1) as f64 {
        return None;
    }
    // Last edit first: an edit's coordinates are those of the text before it, which for the
    // earlier parts is still the old text.
    let mut tree = tree.clone();
    for e in edits.iter().rev() {
        tree.edit(e);
    }
    Some(tree)
}

/// The lines of `text`, each with its newline.
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// Byte offset of each line's start, and the text's length last.
fn starts(lines: &[&str]) -> Vec<usize> {
    let mut at = 0;
    let mut out = Vec::with_capacity(lines.len() + 1);
    for l in lines {
        out.push(at);
        at += l.len();
    }
    out.push(at);
    out
}

/// The position after `text` when it starts at `from`, counted as tree-sitter does (rows, bytes).
fn advance(from: Point, text: &str) -> Point {
    match text.rfind('\n') {
        Some(last) => Point::new(
            from.row + text.bytes().filter(|&b| b == b'\n').count(),
            text.len() - last - 1,
        ),
        None => Point::new(from.row, from.column + text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::walk;
    use crate::render::template_output;

    fn parse_fresh(source: &str) -> Tree {
        python_parser().parse(source, None).unwrap()
    }

    /// Every node of `tree` in order: kind, bytes and start.
    fn nodes(tree: &Tree) -> Vec<(&'static str, std::ops::Range<usize>, Point)> {
        let mut out = Vec::new();
        walk(tree.root_node(), &mut |n| {
            out.push((n.kind(), n.byte_range(), n.start_position()));
            true
        });
        out
    }

    #[test]
    fn edits_keep_positions_consistent() {
        let old = "import a\n\nclass A:\n    x = 1\n";
        let new = "import a\nimport b\n\nclass B:\n    x = 1\n    y = 2";
        let mut p = PythonParser::new();
        p.parse("k", old);
        let tree = p.parse("k", new);
        assert_eq!(
            tree.root_node().to_sexp(),
            parse_fresh(new).root_node().to_sexp()
        );
        assert_eq!(tree.root_node().end_position(), Point::new(5, 9));
        // Unrelated texts fall back to a fresh parse, with the same result.
        let other = "def f():\n    return 1\n";
        assert_eq!(
            p.parse("k", other).root_node().to_sexp(),
            parse_fresh(other).root_node().to_sexp()
        );
    }

    /// Every template's output for every example node, parsed incrementally after every other
    /// node's output of the same file, gives the tree a fresh parse gives.
    #[test]
    fn incremental_trees_equal_fresh_ones() {
        let prompts = [
            "Create PostgreSQL writer Effect node",
            "Redis cache effect node",
            "price calculator with tax rules",
            "text tokenizer compute node",
            "metrics aggregator reducer",
            "order book reducer for trading",
            "payment workflow orchestrator",
            "ETL pipeline orchestrator for data",
        ];
        let outputs: Vec<Vec<(String, String)>> = prompts
            .into_iter()
            .map(|prompt| {
                template_output(prompt)
                    .1
                    .into_iter()
                    .filter(|f| f.path.ends_with(".py"))
                    .map(|f| (f.path, f.content))
                    .collect()
            })
            .collect();
        let mut p = PythonParser::new();
        let mut compared = 0;
        for round in 0..2 {
            for files in &outputs {
                for (path, content) in files {
                    let tree = p.parse(path, content);
                    assert_eq!(
                        tree.root_node().to_sexp(),
                        parse_fresh(content).root_node().to_sexp(),
                        "{path} (round {round})"
                    );
                    // Byte ranges and positions too, not just shapes.
                    assert_eq!(nodes(&tree), nodes(&parse_fresh(content)), "{path}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 100, "compared {compared} files");
        assert!(
            p.incremental > compared / 2,
            "{} of {compared} parses were incremental",
            p.incremental
        );
    }
}
