//! The conformance cases' YAML, read from `discovery/testdata/validation/conformance/` (the one
//! copy of each case, which discovery's validation tests also check), with the few values that
//! depend on the run — certificate paths, pinned hashes, endpoint ports — substituted.
//!
//! Every substitution must match: a fixture that drifts from what a test expects fails the test
//! instead of silently running a different case.

use std::path::Path;

pub struct Fixture {
    name: String,
    text: String,
}

impl Fixture {
    /// `discovery/testdata/validation/conformance/<name>.yaml`.
    pub fn load(name: &str) -> Fixture {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("discovery/testdata/validation/conformance")
            .join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        Fixture {
            name: name.to_owned(),
            text,
        }
    }

    /// Replaces every occurrence of `from` (which must occur) with `to`.
    pub fn replace(mut self, from: &str, to: &str) -> Fixture {
        assert!(
            self.text.contains(from),
            "conformance fixture {} no longer contains {from:?}",
            self.name
        );
        self.text = self.text.replace(from, to);
        self
    }

    /// Drops the documents of `kind` (e.g. the placeholder Secrets a test replaces with real
    /// ones); at least one must be there.
    pub fn without_kind(mut self, kind: &str) -> Fixture {
        let marker = format!("kind: {kind}\n");
        let documents: Vec<&str> = self.text.split("\n---\n").collect();
        let kept: Vec<&str> = documents
            .iter()
            .copied()
            .filter(|document| !document.contains(&marker))
            .collect();
        assert!(
            kept.len() < documents.len(),
            "conformance fixture {} has no {kind}",
            self.name
        );
        self.text = kept.join("\n---\n");
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}
