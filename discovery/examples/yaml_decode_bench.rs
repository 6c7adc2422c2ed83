//! How fast YAML documents become JSON values through the fast road and through serde-saphyr
//! alone. A harness that prints figures, not a test.
//!
//! ```text
//! cargo build --release --bin isthmus --example discovery_bench
//! target/release/examples/discovery_bench --mesh-dir /tmp/mesh   # writes the mesh's YAML
//! cargo run --release -p discovery --example yaml_decode_bench -- /tmp/mesh/cluster1
//! ```
//!
//! Every `.yaml` file under the directory is split into documents once; then each road decodes
//! all of them, on one thread, and the rates are printed with the share the fast road took.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use discovery::resource::fast_yaml::json_value;
use serde_json::Value;

fn main() -> Result<(), Box<dyn Error>> {
    let directory = std::env::args()
        .nth(1)
        .ok_or("usage: yaml_decode_bench DIRECTORY")?;
    let mut files = Vec::new();
    yaml_files(Path::new(&directory), &mut files)?;
    let mut documents = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        documents.extend(text.split("\n---\n").map(str::to_owned));
    }
    let mib = documents.iter().map(String::len).sum::<usize>() as f64 / 1024.0 / 1024.0;
    println!(
        "{} files, {} documents, {mib:.1} MiB",
        files.len(),
        documents.len()
    );

    let started = Instant::now();
    for document in &documents {
        serde_saphyr::from_str::<Value>(document)?;
    }
    let saphyr = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut fast = 0;
    for document in &documents {
        match json_value(document) {
            Some(_) => fast += 1,
            None => {
                serde_saphyr::from_str::<Value>(document)?;
            }
        }
    }
    let road = started.elapsed().as_secs_f64();

    println!(
        "serde-saphyr alone: {saphyr:.2} s, {:.1} MiB/s",
        mib / saphyr
    );
    println!(
        "fast road (serde-saphyr for the {} it left): {road:.2} s, {:.1} MiB/s, {:.1}x",
        documents.len() - fast,
        mib / road,
        saphyr / road
    );
    Ok(())
}

fn yaml_files(directory: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        if path.is_dir() {
            yaml_files(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|extension| extension == "yaml")
        {
            out.push(path);
        }
    }
    Ok(())
}
