//! `l4-bench`: the pieces of the layer-4 benchmark that need a fast TLS client or server.
//!
//! ```text
//! l4-bench certs      --dir D                      CA, backend certificate and key into D
//! l4-bench backend    --listen A --dir D           TLS echo server
//! l4-bench throughput --target A --sni S --dir D [--seconds N]
//! l4-bench latency    --target A --sni S --dir D [--count N] [--size B]
//! l4-bench handshakes --target A --sni S --dir D [--seconds N] [--concurrency C]
//! l4-bench hold       --target A --sni S --dir D --count N
//! ```
//! Every measuring mode prints one `key=value` line per figure, for run.sh to pick up.

mod backend;
mod load;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// `--key value` pairs after the mode.
struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> anyhow::Result<Flags> {
        let mut flags = HashMap::new();
        let mut words = args.iter();
        while let Some(word) = words.next() {
            let Some(key) = word.strip_prefix("--") else {
                bail!("unexpected argument {word:?}: flags are --name value");
            };
            let value = words
                .next()
                .with_context(|| format!("--{key} needs a value"))?;
            flags.insert(key.to_owned(), value.clone());
        }
        Ok(Flags(flags))
    }

    fn text(&self, key: &str) -> anyhow::Result<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("--{key} is required"))
    }

    fn number(&self, key: &str, default: u64) -> anyhow::Result<u64> {
        match self.0.get(key) {
            Some(value) => value
                .parse()
                .with_context(|| format!("--{key} {value:?} is not a number")),
            None => Ok(default),
        }
    }

    fn address(&self, key: &str) -> anyhow::Result<SocketAddr> {
        let text = self.text(key)?;
        text.parse()
            .with_context(|| format!("--{key} {text:?} is not ip:port"))
    }

    fn dir(&self) -> anyhow::Result<PathBuf> {
        Ok(PathBuf::from(self.text("dir")?))
    }

    fn target(&self) -> anyhow::Result<load::Target> {
        Ok(load::Target {
            address: self.address("target")?,
            sni: self.text("sni")?.to_owned(),
            connector: tls::connector(&self.dir()?)?,
        })
    }
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = args.split_first() else {
        bail!("usage: l4-bench certs|backend|throughput|latency|handshakes|hold --flag value ...");
    };
    let flags = Flags::parse(rest)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match mode.as_str() {
            "certs" => tls::write_certificates(&flags.dir()?),
            "backend" => backend::serve(flags.address("listen")?, &flags.dir()?).await,
            "throughput" => {
                let seconds = flags.number("seconds", 5)?;
                load::throughput(&flags.target()?, Duration::from_secs(seconds)).await
            }
            "latency" => {
                let count = flags.number("count", 20_000)?;
                let size = flags.number("size", 1024)?;
                load::latency(&flags.target()?, count as usize, size as usize).await
            }
            "handshakes" => {
                let seconds = flags.number("seconds", 5)?;
                let concurrency = flags.number("concurrency", 32)?;
                load::handshakes(
                    &flags.target()?,
                    Duration::from_secs(seconds),
                    concurrency as usize,
                )
                .await
            }
            "hold" => load::hold(&flags.target()?, flags.number("count", 10_000)? as usize).await,
            other => bail!("unknown mode {other:?}"),
        }
    })
}
