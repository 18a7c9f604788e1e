//! What the pipeline says to models: the code-generation and refinement prompts, the judges'
//! prompts, and how code is read back out of an answer.

use crate::catalog::PatternRef;
use crate::parse::ParsedPrompt;

/// Pull the Python code out of a model's answer: the first ```python block, else the first fenced
/// block, else the whole answer when it looks like code. Empty when there is none.
pub fn extract_code(text: &str) -> String {
    let fenced = |open: &str| -> Option<String> {
        let start = text.find(open)? + open.len();
        let rest = &text[start..];
        let rest = rest
            .strip_prefix('\n')
            .unwrap_or(rest.trim_start_matches(|c| c != '\n'));
        let end = rest.find("```").unwrap_or(rest.len());
        Some(rest[..end].trim_matches('\n').to_string() + "\n")
    };
    if let Some(code) = fenced("```python").or_else(|| fenced("```py")) {
        return code;
    }
    if let Some(code) = fenced("```") {
        return code;
    }
    let t = text.trim();
    if t.contains("class ")
        || t.contains("def ")
        || t.starts_with("import ")
        || t.starts_with("from ")
    {
        return t.to_string() + "\n";
    }
    String::new()
}

pub const CODE_SYSTEM: &str = "You write Python 3.11 ONEX nodes. Answer with the complete file in one ```python code block and nothing else.";

pub fn generation_prompt(
    prompt: &str,
    parsed: &ParsedPrompt,
    contract: &str,
    patterns: &[PatternRef],
    skeleton: &str,
) -> String {
    let patterns: String = patterns
        .iter()
        .map(|p| format!("- {}: {}\n", p.name, p.description))
        .collect();
    format!(
        "Request: {prompt}\n\nWrite v1_0_0/node.py of an ONEX {ty} node.\n\
         Rules: keep the class name {class} and its async method `{method}`; keep the imports of \
         the models and enums as in the starting point (relative imports); Pydantic v2 only; a \
         docstring and type hints on every function; lines of at most 100 characters; no TODO.\n\n\
         Patterns to follow:\n{patterns}\nContract (contract.yaml):\n```yaml\n{contract}```\n\n\
         Starting point (improve it for the request):\n```python\n{skeleton}```",
        ty = parsed.node_type.as_str(),
        class = parsed.class_name(),
        method = parsed.node_type.execute_method(),
    )
}

pub fn refinement_prompt(problems: &[String]) -> String {
    format!(
        "The code has these problems:\n{}\nAnswer with the corrected complete file in one ```python block.",
        problems
            .iter()
            .map(|p| format!("- {p}\n"))
            .collect::<String>()
    )
}

/// The system prompt of a judge of the quorum.
pub const JUDGE_SYSTEM: &str = "You review generated Python code for ONEX nodes. Answer with one JSON object and nothing else: {\"alignment_score\": 0-100, \"correct_node_type\": true|false, \"missing_requirements\": [\"...\"], \"recommendation\": \"PASS\"|\"RETRY\"|\"FAIL\"}.";

/// The question a judge answers about a generated node.
pub fn judge_prompt(request: &str, node_type: &str, class_name: &str, code: &str) -> String {
    format!(
        "Request: {request}\nExpected: an ONEX {node_type} node, class {class_name}.\n\
         Does this code do what the request asks, with the right node type? \
         PASS if it does, RETRY if it needs changes, FAIL if it is wrong.\n\n```python\n{code}\n```"
    )
}

#[cfg(test)]
mod tests {
    use super::extract_code;

    #[test]
    fn code_is_taken_from_fences_or_bare_answers() {
        assert_eq!(extract_code("Here:\n```python\nx = 1\n```\nbye"), "x = 1\n");
        assert_eq!(
            extract_code("```\nclass A:\n    pass\n```"),
            "class A:\n    pass\n"
        );
        assert_eq!(extract_code("import os\nprint(1)"), "import os\nprint(1)\n");
        assert_eq!(extract_code("I cannot help with that."), "");
        assert_eq!(extract_code(""), "");
    }
}
