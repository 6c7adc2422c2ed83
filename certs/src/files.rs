//! The on-disk layout Istio's multicluster setup uses (`tools/certs` style):
//! `<out>/root-cert.pem`, `<out>/root-key.pem`, and per cluster
//! `<out>/<cluster>/{ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem}`, which become
//! the `cacerts` Secret of each cluster.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::authority::{Authority, AuthorityError, AuthorityPem, validate_cluster_name};
use crate::validity::Validity;

pub const ROOT_CERT_FILE: &str = "root-cert.pem";
pub const ROOT_KEY_FILE: &str = "root-key.pem";
pub const CA_CERT_FILE: &str = "ca-cert.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";
pub const CERT_CHAIN_FILE: &str = "cert-chain.pem";
/// Istio's file-mounted workload key (`/etc/certs/key.pem`).
pub const KEY_FILE: &str = "key.pem";

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{}: already exists; pass --force to overwrite", path.display())]
    Exists { path: PathBuf },
    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("CA files in {}: {source}", dir.display())]
    Load {
        dir: PathBuf,
        source: AuthorityError,
    },
    #[error(
        "{}: found {present} but not {missing}; restore it, or pass --force to make a new root",
        dir.display()
    )]
    PartialRoot {
        dir: PathBuf,
        present: &'static str,
        missing: &'static str,
    },
    #[error("no clusters given: name at least one cluster to make an intermediate CA for")]
    NoClusters,
    #[error("cluster {cluster:?} is listed twice")]
    DuplicateCluster { cluster: String },
    #[error(transparent)]
    Authority(#[from] AuthorityError),
}

/// How long generated CAs live. Defaults follow Istio's `Makefile.selfsigned.mk`
/// (root 10 years, intermediates 2 years).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaLifetimes {
    pub root: Duration,
    pub intermediate: Duration,
}

impl Default for CaLifetimes {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            root: Duration::from_secs(3650 * DAY),
            intermediate: Duration::from_secs(730 * DAY),
        }
    }
}

/// What [`generate_mesh_files`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshFiles {
    /// The root already existed in `out_dir` and signed the new intermediates.
    pub root_reused: bool,
    pub written: Vec<PathBuf>,
}

/// Writes a root (or reuses the one already in `out_dir`) and an intermediate per cluster.
/// Without `force`, existing cluster files are never overwritten and an existing root is
/// reused, so clusters can be added later; with `force` everything is made anew.
pub fn generate_mesh_files(
    out_dir: &Path,
    trust_domain: &str,
    clusters: &[&str],
    lifetimes: CaLifetimes,
    force: bool,
) -> Result<MeshFiles, FilesError> {
    if clusters.is_empty() {
        return Err(FilesError::NoClusters);
    }
    let mut seen = HashSet::new();
    for cluster in clusters {
        validate_cluster_name(cluster)?;
        if !seen.insert(*cluster) {
            return Err(FilesError::DuplicateCluster {
                cluster: (*cluster).to_owned(),
            });
        }
    }
    let existing_root = if force {
        None
    } else {
        load_root_files(out_dir)?
    };
    let root_reused = existing_root.is_some();
    let mut planned: Vec<PlannedFile> = Vec::new();
    let root = match existing_root {
        Some(root) => root,
        None => {
            let root =
                Authority::generate_root(trust_domain, Validity::starting_now(lifetimes.root))?;
            planned.push((out_dir.join(ROOT_CERT_FILE), root.cert_pem(), false));
            planned.push((out_dir.join(ROOT_KEY_FILE), root.key_pem(), true));
            root
        }
    };
    for cluster in clusters {
        let intermediate = root.generate_intermediate(
            cluster,
            Some(trust_domain),
            Validity::starting_now(lifetimes.intermediate),
        )?;
        planned.extend(authority_files(&out_dir.join(cluster), &intermediate));
    }
    let written = write_planned(planned, force)?;
    tracing::info!(
        out_dir = %out_dir.display(),
        trust_domain,
        clusters = ?clusters,
        root_reused,
        "wrote mesh CA files"
    );
    Ok(MeshFiles {
        root_reused,
        written,
    })
}

/// Writes `ca` as `dir/{ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem}`.
pub fn write_authority_files(
    dir: &Path,
    ca: &Authority,
    force: bool,
) -> Result<Vec<PathBuf>, FilesError> {
    write_planned(authority_files(dir, ca), force)
}

/// Writes a workload or gateway certificate in Istio's file-mounted layout
/// (`dir/{cert-chain.pem, key.pem, root-cert.pem}`), for bootstrapping before a CSR can be made.
pub fn write_workload_files(
    dir: &Path,
    issued: &crate::issue::IssuedCert,
    ca: &Authority,
    force: bool,
) -> Result<Vec<PathBuf>, FilesError> {
    write_planned(
        vec![
            (dir.join(CERT_CHAIN_FILE), issued.chain_pem.clone(), false),
            (dir.join(KEY_FILE), issued.key_pem.clone(), true),
            (dir.join(ROOT_CERT_FILE), ca.root_pem(), false),
        ],
        force,
    )
}

/// Loads a cluster CA from the four Istio files in `dir` (`cert-chain.pem` may be absent).
pub fn load_authority_files(dir: &Path) -> Result<Authority, FilesError> {
    let ca_cert = read(&dir.join(CA_CERT_FILE))?;
    let ca_key = read(&dir.join(CA_KEY_FILE))?;
    let root_cert = read(&dir.join(ROOT_CERT_FILE))?;
    let chain_path = dir.join(CERT_CHAIN_FILE);
    let cert_chain = if chain_path.exists() {
        Some(read(&chain_path)?)
    } else {
        None
    };
    Authority::from_pem(&AuthorityPem {
        ca_cert: &ca_cert,
        ca_key: &ca_key,
        cert_chain: cert_chain.as_deref(),
        root_cert: &root_cert,
    })
    .map_err(|source| FilesError::Load {
        dir: dir.to_owned(),
        source,
    })
}

/// The root in `out_dir`, if `root-cert.pem` and `root-key.pem` are both there.
pub fn load_root_files(out_dir: &Path) -> Result<Option<Authority>, FilesError> {
    let cert_path = out_dir.join(ROOT_CERT_FILE);
    let key_path = out_dir.join(ROOT_KEY_FILE);
    match (cert_path.exists(), key_path.exists()) {
        (false, false) => return Ok(None),
        (true, false) => {
            return Err(FilesError::PartialRoot {
                dir: out_dir.to_owned(),
                present: ROOT_CERT_FILE,
                missing: ROOT_KEY_FILE,
            });
        }
        (false, true) => {
            return Err(FilesError::PartialRoot {
                dir: out_dir.to_owned(),
                present: ROOT_KEY_FILE,
                missing: ROOT_CERT_FILE,
            });
        }
        (true, true) => {}
    }
    let cert = read(&cert_path)?;
    let key = read(&key_path)?;
    let root = Authority::from_pem(&AuthorityPem {
        ca_cert: &cert,
        ca_key: &key,
        cert_chain: None,
        root_cert: &cert,
    })
    .map_err(|source| FilesError::Load {
        dir: out_dir.to_owned(),
        source,
    })?;
    Ok(Some(root))
}

/// (path, contents, is a private key)
type PlannedFile = (PathBuf, String, bool);

/// Refuses before writing anything, so a refused run leaves no half-written set behind.
fn write_planned(planned: Vec<PlannedFile>, force: bool) -> Result<Vec<PathBuf>, FilesError> {
    if let Some((path, _, _)) = planned.iter().find(|(path, _, _)| !force && path.exists()) {
        return Err(FilesError::Exists { path: path.clone() });
    }
    let mut written = Vec::new();
    for (path, contents, secret) in planned {
        write_file(&path, &contents, secret, force)?;
        written.push(path);
    }
    Ok(written)
}

fn authority_files(dir: &Path, ca: &Authority) -> Vec<PlannedFile> {
    vec![
        (dir.join(CA_CERT_FILE), ca.cert_pem(), false),
        (dir.join(CA_KEY_FILE), ca.key_pem(), true),
        (dir.join(CERT_CHAIN_FILE), ca.chain_pem(), false),
        (dir.join(ROOT_CERT_FILE), ca.root_pem(), false),
    ]
}

fn read(path: &Path) -> Result<String, FilesError> {
    fs::read_to_string(path).map_err(|source| FilesError::Read {
        path: path.to_owned(),
        source,
    })
}

fn write_file(
    path: &Path,
    contents: &str,
    secret: bool,
    overwrite: bool,
) -> Result<(), FilesError> {
    let fail = |source| FilesError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut options = OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        // create_new closes the gap between the existence check and the write.
        options.create_new(true);
    }
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            FilesError::Exists {
                path: path.to_owned(),
            }
        } else {
            fail(source)
        }
    })?;
    file.write_all(contents.as_bytes()).map_err(fail)?;
    Ok(())
}
