#!/usr/bin/env bash
# The one test command (README): formatting, lints, then every test tier that runs here.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
