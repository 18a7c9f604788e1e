//! What makes two pieces of code the same pattern, and how alike two patterns are. Normalised
//! code drops comments, blank lines and spacing, renders indentation as nesting depth, and puts
//! placeholders where the service's own names were; the pattern id is the sha256 of that.

use sha2::{Digest, Sha256};

/// The names of the service a piece of code was generated for (snake_case and PascalCase).
#[derive(Debug, Clone, Default)]
pub struct OwnNames {
    pub service_name: Option<String>,
    pub node_name: Option<String>,
}

/// The normalised form of Python code.
pub fn normalise(code: &str, names: &OwnNames) -> String {
    let mut out = String::with_capacity(code.len());
    // Indentation widths of the open blocks: a line's depth is how many it is inside.
    let mut widths: Vec<usize> = Vec::new();
    let mut in_triple: Option<&'static str> = None;
    for raw in code.lines() {
        let (line, still_open) = strip_comment(raw, in_triple);
        let continuing = in_triple.is_some();
        in_triple = still_open;
        let text = collapse_spaces(line.trim());
        if text.is_empty() {
            continue;
        }
        let depth = if continuing {
            // Inside a multi-line string: its text, not its indentation, is what counts.
            widths.len()
        } else {
            depth_of(&mut widths, line.len() - line.trim_start().len())
        };
        out.push_str(&"\t".repeat(depth));
        out.push_str(&replace_names(&text, names));
        out.push('\n');
    }
    out
}

/// The pattern id: the first 16 hex digits of the sha256 of the normalised code.
pub fn pattern_id(normalised: &str) -> String {
    let digest = Sha256::digest(normalised.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// How alike two normalised codes are, 0 to 1: difflib's ratio (2 * matches / total length)
/// over their characters, as upstream computed it.
pub fn similarity(a: &str, b: &str) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let diff = similar::TextDiff::configure()
        .algorithm(similar::Algorithm::Patience)
        .timeout(std::time::Duration::from_millis(200))
        .diff_chars(a, b);
    f64::from(diff.ratio())
}

/// How a new pattern relates to its nearest existing one of the same node type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    /// Above 0.9: a patch version of it.
    Patch,
    /// 0.7 to 0.9: a minor version of it.
    Minor,
    /// Below 0.7 (or nothing near): a pattern of its own, version 1.0.0.
    New,
}

impl Bump {
    pub fn from_similarity(s: f64) -> Bump {
        if s > 0.9 {
            Bump::Patch
        } else if s >= 0.7 {
            Bump::Minor
        } else {
            Bump::New
        }
    }

    /// The version of the new pattern, from its parent's.
    pub fn version(self, parent: &str) -> String {
        let mut parts = parent
            .split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .chain(std::iter::repeat(0));
        let (major, minor, patch) = (
            parts.next().unwrap_or(1),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        );
        match self {
            Bump::Patch => format!("{major}.{minor}.{}", patch + 1),
            Bump::Minor => format!("{major}.{}.0", minor + 1),
            Bump::New => "1.0.0".into(),
        }
    }
}

/// The line without its `#` comment, and whether a triple-quoted string is open at its end.
fn strip_comment<'a>(
    line: &'a str,
    mut open: Option<&'static str>,
) -> (&'a str, Option<&'static str>) {
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        if let Some(t) = open {
            match line[i..].find(t) {
                Some(at) => {
                    i += at + 3;
                    open = None;
                    continue;
                }
                None => return (line, open),
            }
        }
        let c = bytes[i];
        match quote {
            Some(q) => {
                if c == b'\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == b'#' => return (&line[..i], None),
            None if line[i..].starts_with("\"\"\"") => {
                open = Some("\"\"\"");
                i += 3;
                continue;
            }
            None if line[i..].starts_with("'''") => {
                open = Some("'''");
                i += 3;
                continue;
            }
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None => {}
        }
        i += 1;
    }
    (line, open)
}

fn collapse_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn depth_of(widths: &mut Vec<usize>, width: usize) -> usize {
    while widths.last().is_some_and(|w| *w > width) {
        widths.pop();
    }
    if widths.last().is_none_or(|w| *w < width) && width > 0 {
        widths.push(width);
    }
    widths.len()
}

fn replace_names(text: &str, names: &OwnNames) -> String {
    let mut text = text.to_string();
    // Longest first, so a name that contains another is replaced whole.
    let mut own: Vec<(&str, &str)> = Vec::new();
    if let Some(n) = names.node_name.as_deref().filter(|n| n.len() >= 3) {
        own.push((n, "__Name__"));
    }
    if let Some(s) = names.service_name.as_deref().filter(|s| s.len() >= 3) {
        own.push((s, "__service__"));
    }
    own.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (name, placeholder) in own {
        text = text.replace(name, placeholder);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(service: &str, node: &str) -> OwnNames {
        OwnNames {
            service_name: Some(service.into()),
            node_name: Some(node.into()),
        }
    }

    const CODE: &str = "import hashlib\n\n\ndef run(operation, payload):\n    # hash each file\n    out = {}\n    for f in payload['files']:\n        out[f['name']] = hashlib.sha256(f['data'].encode()).hexdigest()  # hex\n    return {'checksums': out, 'service': 'file_hasher'}\n";

    #[test]
    fn formatting_comments_and_own_names_do_not_change_the_id() {
        let reformatted = "import hashlib\ndef run(operation,  payload):\n  out = {}\n  # a comment\n  for f in payload['files']:\n      out[f['name']] = hashlib.sha256(f['data'].encode()).hexdigest()\n\n  return {'checksums': out, 'service': 'blob_digest'}\n";
        let a = normalise(CODE, &names("file_hasher", "FileHasher"));
        let b = normalise(reformatted, &names("blob_digest", "BlobDigest"));
        assert_eq!(a, b);
        assert_eq!(pattern_id(&a), pattern_id(&b));
        assert_eq!(pattern_id(&a).len(), 16);
    }

    #[test]
    fn a_change_of_behaviour_changes_the_id() {
        let md5 = CODE.replace("sha256", "md5");
        let n = OwnNames::default();
        assert_ne!(
            pattern_id(&normalise(CODE, &n)),
            pattern_id(&normalise(&md5, &n))
        );
    }

    #[test]
    fn a_hash_inside_a_string_is_not_a_comment() {
        let n = OwnNames::default();
        assert_eq!(normalise("x = '#1'  # note\n", &n), "x = '#1'\n");
        let doc = "def f():\n    \"\"\"Doc # not a comment\n    more\"\"\"\n    return 1\n";
        assert!(normalise(doc, &n).contains("# not a comment"));
    }

    #[test]
    fn similarity_picks_patch_minor_and_new_at_their_thresholds() {
        assert_eq!(Bump::from_similarity(0.95), Bump::Patch);
        assert_eq!(Bump::from_similarity(0.9), Bump::Minor);
        assert_eq!(Bump::from_similarity(0.7), Bump::Minor);
        assert_eq!(Bump::from_similarity(0.6999), Bump::New);
        assert_eq!(Bump::Patch.version("1.2.3"), "1.2.4");
        assert_eq!(Bump::Minor.version("1.2.3"), "1.3.0");
        assert_eq!(Bump::New.version("1.2.3"), "1.0.0");
        let n = OwnNames::default();
        let a = normalise(CODE, &n);
        assert!((similarity(&a, &a) - 1.0).abs() < 1e-9);
        let small = normalise(&CODE.replace("hexdigest()", "hexdigest().upper()"), &n);
        assert_eq!(Bump::from_similarity(similarity(&a, &small)), Bump::Patch);
        let other = normalise(
            "def run(operation, payload):\n    return {'total': sum(payload['values'])}\n",
            &n,
        );
        assert_eq!(Bump::from_similarity(similarity(&a, &other)), Bump::New);
    }
}
