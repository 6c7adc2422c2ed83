//! `isthmus demo`: two clusters on two networks, discovery, an east-west gateway per cluster,
//! workload proxies and sample backends, all in this process on loopback addresses
//! (127.0.1.x is network1, 127.0.2.x is network2). It makes cross-network calls, prints what
//! happened and the commands to try more, and exits 0 when every check held.
//!
//! Loopback cannot keep the two networks apart; the network-namespace test
//! (`tests/netns_eastwest.rs`) is the proof that calls cross only through the gateways.

mod backend;
mod calls;
mod files;
mod topology;

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stay up after the report (Ctrl-C stops), so the "try this" commands work.
    #[arg(long)]
    keep_running: bool,
    /// Calls per check.
    #[arg(long, default_value_t = 12)]
    calls: usize,
    #[command(subcommand)]
    part: Option<Part>,
}

#[derive(Debug, clap::Subcommand)]
enum Part {
    /// Run only sample backends: each answers with its name and its caller's identity.
    Backend {
        /// `ADDR=NAME`, repeatable, e.g. `127.0.0.1:8080=reviews-v1`.
        #[arg(long = "serve", required = true, value_parser = backend::parse_serve)]
        serve: Vec<(SocketAddr, String)>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(Part::Backend { serve }) = args.part {
        return backend::run_standalone(serve);
    }
    // Several crates build rustls configs; one provider for the whole process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    super::runtime()?.block_on(async {
        let workdir = files::Workdir::create().context("preparing the demo's files")?;
        let running = topology::start(&workdir)
            .await
            .context("starting the demo mesh")?;
        let report = calls::run_checks(&running, args.calls).await;
        calls::print_report(&running, &workdir, &report);
        let code = if report.all_passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
        if args.keep_running {
            println!(
                "\nRunning until Ctrl-C (files in {}).",
                workdir.path().display()
            );
            super::wait_for_ctrl_c().await;
        }
        running.shutdown().await;
        drop(workdir);
        Ok(code)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's own checks are the assertions: every one must pass on this machine. Uses the
    /// demo's fixed loopback addresses (127.0.1.x, 127.0.2.x), so it fails if a demo is running.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_passes_its_own_checks() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let workdir = files::Workdir::create().unwrap();
        let running = topology::start(&workdir).await.unwrap();
        let report = calls::run_checks(&running, 6).await;
        running.shutdown().await;
        let failed: Vec<_> = report
            .checks
            .iter()
            .filter(|check| !check.passed)
            .map(|check| format!("{}: {:?}", check.title, check.detail))
            .collect();
        assert!(failed.is_empty(), "{failed:#?}");
        assert_eq!(
            report.checks.len(),
            4,
            "renewal, reviews, subset, both networks"
        );
    }
}
