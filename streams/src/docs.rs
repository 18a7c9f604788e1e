//! `docs/schemas.md`, generated from the registry so the documentation cannot drift from the code.

use std::fmt::Write;

use crate::registry::{Topic, TopicKind};
use crate::schema::FieldType;

/// Render the schema reference for every topic.
pub fn schemas_markdown() -> String {
    let mut out = String::new();
    out.push_str("# Topics and schemas\n\n");
    out.push_str(
        "Generated from the topic registry (`streams/src/registry.rs`); do not edit by hand.\n\
         Regenerate with `omnistream topics --markdown > docs/schemas.md`; a test fails when the two differ.\n\n\
         Every topic has one Arrow schema and one raw lake table. Every event carries the envelope\n\
         (`event_id` ... `schema_version`), then the topic's payload columns, then `metadata`.\n\
         On ingest (one JSON object per line) a field may also be nested under `payload`, and the\n\
         keys listed as aliases are accepted for compatibility with upstream producers.\n\n",
    );
    out.push_str(
        "| topic | lake table | kind | partition key | description |\n|---|---|---|---|---|\n",
    );
    for t in Topic::ALL {
        let s = t.spec();
        let kind = match s.kind {
            TopicKind::Command => "command",
            TopicKind::Event => "event",
        };
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | `{}` | {} |",
            s.name, s.table, kind, s.partition_key, s.description
        );
    }
    for t in Topic::ALL {
        let s = t.spec();
        let _ = write!(
            out,
            "\n## `{}`\n\n{}\n\nLake table `{}`, event type `{}`, partition key `{}`.\n\n",
            s.table, s.description, s.name, s.event_type, s.partition_key
        );
        out.push_str(
            "| column | Arrow type | required | JSON on ingest | aliases | description |\n",
        );
        out.push_str("|---|---|---|---|---|---|\n");
        for f in &s.fields {
            let aliases = f
                .aliases
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let ty = f.ty.arrow_type().to_string().replace('|', "\\|");
            let json = if f.ty == FieldType::Binary {
                "not accepted"
            } else {
                f.ty.json_shape()
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                f.name,
                ty,
                if f.required { "yes" } else { "" },
                json,
                aliases,
                f.doc
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// docs/schemas.md must be what the registry says. Regenerate with
    /// `UPDATE_DOCS=1 cargo test -p omnistream-streams` or `omnistream topics --markdown`.
    #[test]
    fn docs_schemas_md_matches_the_registry() {
        // The manifest directory at run time: a test binary reused from another checkout of the
        // same sources (CI's clone shares the target directory) must read this checkout's file.
        let path = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).into(),
                PathBuf::from,
            )
            .join("../docs/schemas.md");
        let expected = super::schemas_markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let first_difference = actual
            .lines()
            .zip(expected.lines())
            .enumerate()
            .find(|(_, (a, e))| a != e)
            .map(|(i, (a, e))| format!("line {}:\n  file:     {a}\n  registry: {e}", i + 1))
            .unwrap_or_else(|| "one is a prefix of the other".into());
        assert!(
            actual == expected,
            "docs/schemas.md has drifted from the topic registry ({first_difference}): run \
             `omnistream topics --markdown > docs/schemas.md` (or UPDATE_DOCS=1 cargo test -p omnistream-streams)"
        );
    }
}
