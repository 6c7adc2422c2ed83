//! `isthmus proxy-config listeners|clusters|endpoints`: a gateway's applied configuration as
//! tables shaped like `istioctl proxy-config`, read from its admin port.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_enum)]
    what: What,
    /// The gateway's admin address.
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// Print the JSON the gateway serves instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum What {
    Listeners,
    Clusters,
    Endpoints,
    /// The whole applied GatewayConfig, as JSON.
    All,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = match (args.what, args.json) {
        (What::Listeners, false) => "/listeners?format=table",
        (What::Listeners, true) => "/listeners",
        (What::Clusters, false) => "/clusters?format=table",
        (What::Clusters, true) => "/clusters",
        (What::Endpoints, false) => "/endpoints?format=table",
        (What::Endpoints, true) => "/endpoints",
        (What::All, _) => "/config_dump",
    };
    let uri = format!("http://{}{path}", args.admin);
    let body = super::runtime()?.block_on(fetch(&uri))?;
    print!("{body}");
    Ok(ExitCode::SUCCESS)
}

async fn fetch(uri: &str) -> anyhow::Result<String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let response = client
        .get(uri.parse().context("admin address")?)
        .await
        .with_context(|| format!("cannot reach the gateway admin at {uri}: is the gateway running, and is --admin right?"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the admin answer")?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        bail!("the gateway admin answered {status} for {uri}: {text}");
    }
    Ok(text)
}
