#!/usr/bin/env bash
# The pure core must stay free of IO crates (design §3): fail if any appears in its normal tree.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(cargo tree -p multicluster -e normal --prefix none --format '{p}')
forbidden=$(grep -E '^(tokio|hyper|quinn|kube|tonic|h3|rustls|mio) ' <<<"$tree" || true)
if [ -n "$forbidden" ]; then
  echo "multicluster depends on IO crates; move that code to discovery or gateway:" >&2
  echo "$forbidden" >&2
  exit 1
fi
echo "multicluster: $(wc -l <<<"$tree") crates in its normal tree, none of tokio/hyper/quinn/kube/tonic/h3/rustls"
