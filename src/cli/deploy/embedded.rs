//! The deploy/ tree, compiled in: `isthmus deploy` renders exactly the files kustomize builds.

macro_rules! embed {
    ($path:literal) => {
        (
            $path,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/", $path)),
        )
    };
}

/// Every file under deploy/base and deploy/overlays, by its path relative to deploy/.
/// `tests/deploy_render.rs` fails when a file there is missing from this list.
pub const FILES: &[(&str, &str)] = &[
    embed!("base/discovery/kustomization.yaml"),
    embed!("base/discovery/discovery.yaml"),
    embed!("base/eastwest/kustomization.yaml"),
    embed!("base/eastwest/eastwest.yaml"),
    embed!("base/eastwest/cross-network-gateway.yaml"),
    embed!("base/ingress/kustomization.yaml"),
    embed!("base/ingress/ingress.yaml"),
    embed!("overlays/discovery/kustomization.yaml"),
    embed!("overlays/discovery/mesh.yaml"),
    embed!("overlays/eastwest/kustomization.yaml"),
    embed!("overlays/eastwest/cluster.yaml"),
    embed!("overlays/ingress/kustomization.yaml"),
    embed!("overlays/ingress/cluster.yaml"),
];

pub fn file(path: &str) -> Option<&'static str> {
    FILES
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn walk(dir: &Path, root: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("deploy/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, root, found);
            } else {
                let relative = path.strip_prefix(root).expect("below deploy/");
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }

    /// A file added to deploy/ but not compiled in would make `isthmus deploy` and
    /// `kubectl kustomize` disagree.
    #[test]
    fn every_kustomize_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
        let mut on_disk = Vec::new();
        walk(&root.join("base"), &root, &mut on_disk);
        walk(&root.join("overlays"), &root, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = super::FILES
            .iter()
            .map(|(path, _)| path.to_string())
            .collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }
}
