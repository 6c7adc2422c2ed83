//! `isthmus validate FILE...`

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// YAML files, or directories whose *.yaml / *.yml files are all checked.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let outcome = discovery::validate_cmd::validate_paths(&args.paths);
    print!("{}", outcome.render());
    println!("{}", outcome.summary());
    Ok(if outcome.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
