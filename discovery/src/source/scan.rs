//! Finding the YAML files of a cluster directory.

use std::io;
use std::path::{Path, PathBuf};

/// Symlinked directories are followed (Kubernetes ConfigMap mounts are symlinks); this bounds
/// the walk should they form a loop.
const MAX_DEPTH: usize = 16;

/// Every `*.yaml`/`*.yml` file under `directory`, recursively, sorted by path. Hidden entries
/// are skipped: editors' swap files and the `..data` staging directories of ConfigMap mounts
/// (whose files are also reachable through the visible symlinks) live there.
pub(crate) fn yaml_files(directory: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    walk(directory, 0, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk(directory: &Path, depth: usize, found: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // `metadata` follows symlinks; a dangling link is skipped like a vanished file.
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        if metadata.is_dir() {
            if depth < MAX_DEPTH {
                walk(&path, depth + 1, found)?;
            }
        } else if metadata.is_file() && is_yaml(&path) {
            found.push(path);
        }
    }
    Ok(())
}

pub(crate) fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| matches!(extension, "yaml" | "yml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_yaml_recursively_sorted_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/deeper")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        for file in [
            "z.yaml",
            "a.yml",
            "b/deeper/c.yaml",
            "notes.txt",
            ".swap.yaml",
            ".hidden/x.yaml",
        ] {
            std::fs::write(root.join(file), "").unwrap();
        }
        let found: Vec<String> = yaml_files(root)
            .unwrap()
            .iter()
            .map(|path| path.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(found, ["a.yml", "b/deeper/c.yaml", "z.yaml"]);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(yaml_files(&dir.path().join("gone")).is_err());
    }
}
