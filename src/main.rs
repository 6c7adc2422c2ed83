//! `isthmus`: the one binary. A thin CLI; every subcommand calls into a crate.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// glibc's malloc gives every thread that allocates its own arena and seldom hands freed
// pages back: discovery's blocking-pool translations grew RSS by gigabytes that way, and the
// gateway's per-request allocations cost more instructions than mimalloc's thread caches.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.log_format);
    match cli::run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
