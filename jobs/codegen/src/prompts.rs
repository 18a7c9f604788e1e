//! What the pipeline says to models: the code-generation and refinement prompts, the judges'
//! prompts, and how code is read back out of an answer.

use crate::assemble::{LOGIC_MODULE, Strategy, run_signature};
use crate::catalog::{PatternRef, StoredCode};
use crate::parse::{NodeType, ParsedPrompt};
use crate::spec::{Example, Fields, RequestSpec};

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

/// A stored pattern longer than this (code and its request, in bytes; about 1,000 tokens) is
/// not used as the worked example: with the request's own stub and the model's answer it would
/// not fit a 4096-token context.
pub const MAX_EXAMPLE_CHARS: usize = 4_000;

/// Problems listed in a refinement prompt, and the bytes kept of each.
pub const MAX_PROBLEMS: usize = 8;
pub const MAX_PROBLEM_CHARS: usize = 400;

pub const CODE_SYSTEM: &str = "You write Python 3.11 ONEX nodes. Answer with the complete file in one ```python code block and nothing else.";

/// The system prompt of import-first generation.
pub const LOGIC_SYSTEM: &str = "You write the logic of ONEX nodes in Python 3.11: one module with a `run` function and its helpers, standard library only. Answer with the module in one ```python code block and nothing else.";

/// The system prompt of code generation with `strategy`.
pub fn code_system(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::ImportFirst => LOGIC_SYSTEM,
        Strategy::Rewrite => CODE_SYSTEM,
    }
}

/// A worked example of `logic.py` per node type, for another request (said before it): what a
/// good part looks like (the pattern store's best match will take its place).
fn worked_example(t: NodeType) -> (&'static str, &'static str) {
    match t {
        NodeType::Compute => (
            "add up invoice line amounts (payload: amounts: list[float]; returns: total: float, lines: int)",
            r#"def run(operation: str, payload: dict[str, object]) -> dict[str, object]:
    """Return the total of the line amounts, rounded to cents."""
    amounts: list[float] = payload["amounts"]
    if not amounts:
        raise ValueError("no amounts to add")
    return {"total": round(sum(amounts), 2), "lines": len(amounts)}
"#,
        ),
        NodeType::Reducer => (
            "count logins per user (payload: key: str; returns: key: str, count: int)",
            r#"def run(operation: str, payload: dict[str, object], state: dict[str, object]) -> dict[str, object]:
    """Count the events of each key; `reset` forgets every count."""
    counts = state.setdefault("counts", {})
    if operation == "reset":
        counts.clear()
        return {"key": "", "count": 0}
    key: str = payload["key"]
    counts[key] = counts.get(key, 0) + 1
    return {"key": key, "count": counts[key]}
"#,
        ),
        NodeType::Effect => (
            "user e-mail writer, e-mails in lower case (payload: key: str, email: str; returns: stored: bool, email: str)",
            r#"async def run(operation: str, payload: dict[str, object], state: dict[str, object], client) -> dict[str, object]:
    """Store the user's e-mail address in lower case through the client."""
    key: str = payload["key"]
    email: str = payload["email"]
    record = {"key": key, "email": email.lower()}
    response = await client.send(operation, record)
    return {"stored": bool(response.get("stored")), "email": record["email"]}
"#,
        ),
        NodeType::Orchestrator => (
            "ship an order once it is paid (payload: paid: bool; returns: shipped: bool, steps: list[str])",
            r#"def run(operation: str, payload: dict[str, object], state: dict[str, object]) -> dict[str, object]:
    """Check the payment, then ship; an unpaid order stops the workflow."""
    paid: bool = payload["paid"]
    steps = ["check_payment"]
    if not paid:
        raise ValueError("order is not paid")
    steps.append("ship")
    state["shipped"] = int(state.get("shipped", 0)) + 1
    return {"shipped": True, "steps": steps}
"#,
        ),
    }
}

fn field_list(fields: &Fields) -> String {
    fields
        .0
        .iter()
        .map(|f| format!("{}: {}", f.name, f.ty))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A JSON value as Python writes it (`True`, `None`; strings in JSON's quoting, which Python
/// reads the same).
fn py_literal(v: &serde_json::Value) -> String {
    use serde_json::Value;
    let join = |items: Vec<String>| items.join(", ");
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(_) | Value::String(_) => v.to_string(),
        Value::Array(items) => format!("[{}]", join(items.iter().map(py_literal).collect())),
        Value::Object(m) => {
            let pairs = m
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), py_literal(v)));
            format!("{{{}}}", join(pairs.collect()))
        }
    }
}

/// The operation an example runs when it names none.
fn first_operation(parsed: &ParsedPrompt) -> &str {
    parsed
        .operations
        .first()
        .map(String::as_str)
        .unwrap_or("run")
}

/// `run("count", {"text": "a b"}, state)`: one call of an example, as Python writes it.
fn run_call(
    op: &Option<String>,
    input: &serde_json::Map<String, serde_json::Value>,
    first_op: &str,
    extra: &str,
) -> String {
    let op = op.as_deref().unwrap_or(first_op);
    let input = py_literal(&serde_json::Value::Object(input.clone()));
    format!("run({op:?}, {input}{extra})")
}

/// What an example asks, for a refinement prompt: `run("count", {"text": "a b"}) should return
/// {"words": 2}` (after its earlier calls).
pub fn example_ask(e: &Example, parsed: &ParsedPrompt) -> String {
    example_ask_with(e, first_operation(parsed), "")
}

/// An example as asked, its calls with `extra` arguments (`, state`).
fn example_ask_with(e: &Example, first: &str, extra: &str) -> String {
    let call = |op: &Option<String>, input: &_| run_call(op, input, first, extra);
    let before: Vec<String> = e
        .before
        .iter()
        .map(|c| call(&c.operation, &c.input))
        .collect();
    let before = if before.is_empty() {
        String::new()
    } else {
        format!("after {}, ", before.join(", "))
    };
    let outcome = match (&e.output, &e.error) {
        (Some(out), _) => format!(
            "should return {}",
            py_literal(&serde_json::Value::Object(out.clone()))
        ),
        (None, Some(err)) => format!("should raise ValueError mentioning {err:?}"),
        (None, None) => String::new(),
    };
    format!("{before}{} {outcome}", call(&e.operation, &e.input))
}

/// The function to complete: the signature, and the request as its docstring, with the
/// operations and the declared fields.
fn stub(prompt: &str, parsed: &ParsedPrompt, spec: &RequestSpec) -> String {
    let t = parsed.node_type;
    let mut doc = format!(
        "{}:\n    \"\"\"{}\n\n    operation: one of {}\n",
        run_signature(t),
        prompt.trim().replace("\"\"\"", "'''"),
        parsed.operations.join(", ")
    );
    if !spec.input.is_empty() {
        doc.push_str(&format!("    payload: {}\n", field_list(&spec.input)));
    }
    if !spec.output.is_empty() {
        doc.push_str(&format!("    returns: {}\n", field_list(&spec.output)));
    }
    doc.push_str("    \"\"\"\n");
    doc + &payload_reads(parsed.node_type, spec)
}

/// The stub's first lines read the declared input fields into typed locals: the scaffold has
/// validated them, and a small model that sees its own field names stops reaching for the
/// worked example's (`payload["amounts"]` in a node that has no amounts).
fn payload_reads(t: NodeType, spec: &RequestSpec) -> String {
    let params = crate::assemble::run_parameters(t);
    spec.input
        .0
        .iter()
        .filter(|f| !params.contains(&f.name.as_str()))
        .map(|f| {
            format!(
                "    {name}: {ty} = payload[\"{name}\"]\n",
                name = f.name,
                ty = f.ty
            )
        })
        .collect()
}

/// The request's examples (up to six) as a list the function must satisfy, in prose before the
/// code: in the docstring, a small model copies them into its answer (about a third of its
/// output tokens) instead of only reading them.
fn examples_list(parsed: &ParsedPrompt, spec: &RequestSpec) -> String {
    let extra = match parsed.node_type {
        NodeType::Compute => "",
        NodeType::Effect => ", state, client",
        _ => ", state",
    };
    let first = first_operation(parsed);
    let lines: Vec<String> = spec
        .examples
        .iter()
        .take(6)
        .map(|e| format!("- {}", example_ask_with(e, first, extra)))
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "The function must satisfy these examples:\n{}\n\n",
        lines.join("\n")
    )
}

/// The worked example among the retrieved patterns' code, best first: the first `logic.py`
/// short enough to leave the request room in a small model's context.
pub fn fitting_example<'a>(
    codes: impl IntoIterator<Item = &'a StoredCode>,
) -> Option<&'a StoredCode> {
    codes
        .into_iter()
        .find(|c| c.module == LOGIC_MODULE && c.code.len() + c.prompt.len() <= MAX_EXAMPLE_CHARS)
}

/// Import-first: what the model writes is `logic.py` alone. The request comes last, its examples
/// listed just before the docstring of the function to complete: small models follow the last
/// code they see, so the worked example (another request) comes first.
pub fn logic_prompt(
    prompt: &str,
    parsed: &ParsedPrompt,
    spec: &RequestSpec,
    service: &str,
    example: Option<&StoredCode>,
) -> String {
    let t = parsed.node_type;
    let state = match t {
        NodeType::Compute => "",
        _ => "`state` is a dict the node keeps between calls (use state.setdefault).\n",
    };
    let client = if t == NodeType::Effect {
        format!(
            "`client` stands for {service}: `await client.send(operation, data)` sends one call \
             and returns a dict. The default client is in memory: it stores `data` under \
             its \"key\" field (else its \"id\", else a new key) and answers {{\"key\", \"stored\": True, \"records\": n}}; for read \
             operations {{\"key\", \"found\", \"record\"}}; for delete operations \
             {{\"key\", \"removed\", \"records\"}}.\n"
        )
    } else {
        String::new()
    };
    // The best stored pattern's logic is the worked example; the built-in one without it.
    let (worked_request, worked) = match example {
        Some(e) => (e.prompt.as_str(), e.code.as_str()),
        None => worked_example(t),
    };
    format!(
        "You write {LOGIC_MODULE}, the logic of an ONEX {ty} node. The node around it (models, \
         validation, events, retries, timeouts) exists and calls `run`.\n{state}{client}\
         Rules: the standard library only; no classes named Node... or Model...; a docstring \
         and type hints on every function; raise ValueError with a clear message for input it \
         cannot handle; lines of at most 100 characters.\n\n\
         For another request, \"{worked_request}\", the module was:\n```python\n{worked}```\n\n\
         Now write {LOGIC_MODULE} for this request. {examples}Complete the function so that it \
         does what its docstring says and satisfies the examples; answer with the whole module \
         in one ```python block:\n```python\n{stub}```",
        ty = t.as_str(),
        examples = examples_list(parsed, spec),
        stub = stub(prompt, parsed, spec),
    )
}

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

/// The problems sent back, each cut to a line's worth: a traceback or a long example output
/// would otherwise overflow a small model's context (4096 tokens for the local Qwen).
pub fn refinement_prompt(problems: &[String], strategy: Strategy) -> String {
    let what = match strategy {
        Strategy::ImportFirst => "the corrected logic.py",
        Strategy::Rewrite => "the corrected complete file",
    };
    let mut listed: String = problems
        .iter()
        .take(MAX_PROBLEMS)
        .map(|p| format!("- {}\n", clip(p, MAX_PROBLEM_CHARS)))
        .collect();
    if problems.len() > MAX_PROBLEMS {
        listed.push_str(&format!("- and {} more\n", problems.len() - MAX_PROBLEMS));
    }
    format!("The code has these problems:\n{listed}\nAnswer with {what} in one ```python block.")
}

/// `s` cut to at most `max` bytes at a character boundary, marked when cut. Not the decoder's
/// `reject::truncate`: its "..." mark also occurs in prompt text ("Node..."), so a cut problem
/// gets a mark of its own.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    format!("{} [...]", &s[..s.floor_char_boundary(max)])
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
    fn refinement_prompts_stay_small_whatever_the_problems() {
        use super::{MAX_PROBLEM_CHARS, MAX_PROBLEMS, refinement_prompt};
        use crate::assemble::Strategy;
        let long = format!("example 1: expected {{'a': 1}}, got {}", "é".repeat(5_000));
        let problems: Vec<String> = (0..30).map(|i| format!("{i}: {long}")).collect();
        let prompt = refinement_prompt(&problems, Strategy::ImportFirst);
        assert!(
            prompt.len() < MAX_PROBLEMS * (MAX_PROBLEM_CHARS + 16) + 200,
            "{}",
            prompt.len()
        );
        assert!(prompt.contains("- 7: example 1"));
        assert!(!prompt.contains("- 8: example 1"));
        assert!(prompt.contains("- and 22 more"));
        assert!(prompt.contains("[...]"));
        let short = refinement_prompt(&["G3: no docstring".into()], Strategy::Rewrite);
        assert!(short.contains("- G3: no docstring\n"));
        assert!(!short.contains("[...]") && !short.contains("more"));
    }

    #[test]
    fn a_pattern_too_long_for_the_context_gives_way_to_the_next_or_the_built_in_example() {
        use super::{MAX_EXAMPLE_CHARS, fitting_example, logic_prompt};
        use crate::catalog::StoredCode;
        let request = "Create a compute node that doubles a number";
        let parsed = crate::parse::parse_prompt(request, None).unwrap();
        let spec = crate::spec::RequestSpec::default();
        let pattern = |code: String| StoredCode {
            module: "v1_0_0/logic.py".into(),
            code,
            operations: Vec::new(),
            prompt: "Create a compute node that triples a number".into(),
        };
        let fits = pattern("def run(x):\n    return 3 * x  # STORED\n".into());
        let long = pattern(format!(
            "# LONG\n{}",
            "x = 1\n".repeat(MAX_EXAMPLE_CHARS / 6)
        ));
        let chosen = fitting_example([&long, &fits]);
        let prompt = logic_prompt(request, &parsed, &spec, "svc", chosen);
        assert!(prompt.contains("# STORED") && !prompt.contains("# LONG"));
        let chosen = fitting_example([&long]);
        assert!(chosen.is_none());
        let prompt = logic_prompt(request, &parsed, &spec, "svc", chosen);
        assert!(!prompt.contains("# LONG"));
        assert!(prompt.len() < MAX_EXAMPLE_CHARS, "{}", prompt.len());
    }

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
