#!/usr/bin/env bash
# The one test command (README): formatting, lints, the pure-core check, every test tier that
# runs on this machine, and a build of each fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "pure core has no IO dependencies"
./scripts/check-pure-core.sh

step "tests"
cargo test --workspace --all-targets

step "deploy manifests: kubernetes-validate, isthmus validate, kubectl kustomize"
./scripts/validate-manifests.sh

step "fuzz targets build"
for fuzz in */fuzz/Cargo.toml; do
  cargo build --quiet --manifest-path "$fuzz" --target-dir target/fuzz
  echo "built $(dirname "$fuzz")"
done
