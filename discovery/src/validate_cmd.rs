//! `isthmus validate FILE...`: decode and validate resources, print every problem.
//!
//! The CLI calls [`validate_paths`], prints [`ValidationOutcome::render`] and exits with
//! [`ValidationOutcome::exit_code`].

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::istio::{Problem, validate_resource};
pub use crate::mesh::Severity;
use crate::resource::decode_documents;

/// Why a path could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot read file: {source}")]
    File { path: String, source: io::Error },
    #[error("{path}: cannot list directory: {source}")]
    Directory { path: String, source: io::Error },
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// The file the finding is about.
    pub path: String,
    /// `Gateway istio-system/bookinfo-gateway`, when the finding is about one resource.
    pub resource: Option<String>,
    /// `spec.servers[0].tls`, when the finding is about one field.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.path)?;
        if let Some(resource) = &self.resource {
            write!(f, ": {resource}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything `isthmus validate` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationOutcome {
    pub findings: Vec<Finding>,
    pub files_checked: usize,
    pub resources_checked: usize,
}

impl ValidationOutcome {
    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    pub fn error_count(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warning_count(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|finding| finding.severity == severity)
            .count()
    }

    /// 1 when any error was found (the CLI's exit status), else 0.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.has_errors())
    }

    /// One line per finding, in file order.
    pub fn render(&self) -> String {
        self.findings
            .iter()
            .map(|finding| format!("{finding}\n"))
            .collect()
    }

    /// `2 errors, 1 warning in 3 files (12 resources)`.
    pub fn summary(&self) -> String {
        let plural = |count: usize, word: &str| {
            if count == 1 {
                format!("{count} {word}")
            } else {
                format!("{count} {word}s")
            }
        };
        format!(
            "{}, {} in {} ({})",
            plural(self.error_count(), "error"),
            plural(self.warning_count(), "warning"),
            plural(self.files_checked, "file"),
            plural(self.resources_checked, "resource"),
        )
    }

    /// Decodes and validates one text; `path` names it in the output.
    pub fn check_text(&mut self, text: &str, path: &str) {
        self.files_checked += 1;
        let (resources, errors) = decode_documents(text, path);
        for error in errors {
            let origin = error.origin().to_string();
            let full = error.to_string();
            // The decode error already starts with its origin; keep the message after it.
            let message = full
                .strip_prefix(&format!("{origin}: "))
                .unwrap_or(&full)
                .to_string();
            self.findings.push(Finding {
                severity: Severity::Error,
                path: origin,
                resource: None,
                field: None,
                message,
            });
        }
        for decoded in resources {
            self.resources_checked += 1;
            let report = validate_resource(&decoded.resource);
            let problems = report
                .errors
                .into_iter()
                .map(|problem| (Severity::Error, problem))
                .chain(
                    report
                        .warnings
                        .into_iter()
                        .map(|problem| (Severity::Warning, problem)),
                );
            for (severity, problem) in problems {
                self.findings.push(finding(severity, path, problem));
            }
        }
    }

    fn read_error(&mut self, error: &ReadError) {
        let (path, message) = match error {
            ReadError::File { path, source } => (path, format!("cannot read file: {source}")),
            ReadError::Directory { path, source } => {
                (path, format!("cannot list directory: {source}"))
            }
        };
        self.findings.push(Finding {
            severity: Severity::Error,
            path: path.clone(),
            resource: None,
            field: None,
            message,
        });
    }
}

fn finding(severity: Severity, path: &str, problem: Problem) -> Finding {
    Finding {
        severity,
        path: path.to_string(),
        resource: Some(format!(
            "{} {}/{}",
            problem.kind, problem.namespace, problem.name
        )),
        field: Some(problem.field),
        message: problem.message,
    }
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| extension == "yaml" || extension == "yml")
}

/// The YAML files of a directory (not recursive), sorted by name.
fn yaml_files(directory: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let to_error = |source| ReadError::Directory {
        path: directory.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(directory).map_err(to_error)? {
        let path = entry.map_err(to_error)?.path();
        if path.is_file() && is_yaml(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads each path (a file, or every `*.yaml`/`*.yml` of a directory, sorted), decodes every
/// document and validates every resource.
pub fn validate_paths(paths: &[PathBuf]) -> ValidationOutcome {
    let mut outcome = ValidationOutcome::default();
    for path in paths {
        let files = if path.is_dir() {
            match yaml_files(path) {
                Ok(files) => {
                    if files.is_empty() {
                        outcome.findings.push(Finding {
                            severity: Severity::Warning,
                            path: path.display().to_string(),
                            resource: None,
                            field: None,
                            message: "no *.yaml or *.yml files in this directory".to_string(),
                        });
                    }
                    files
                }
                Err(error) => {
                    outcome.read_error(&error);
                    continue;
                }
            }
        } else {
            vec![path.clone()]
        };
        for file in files {
            let label = file.display().to_string();
            match fs::read_to_string(&file) {
                Ok(text) => outcome.check_text(&text, &label),
                Err(source) => outcome.read_error(&ReadError::File {
                    path: label,
                    source,
                }),
            }
        }
    }
    outcome
}
