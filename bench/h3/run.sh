#!/usr/bin/env bash
# HTTP/3 through the Isthmus gateway vs Caddy 2.6 (Debian) serving HTTP/3 to the same
# upstream with the same certificate, and the gateway's HTTP/3 vs its own HTTPS over TCP
# (HTTP/2, h2load). One worker/thread each (gateway data-plane threads 1, Caddy
# GOMAXPROCS=1) so the ratios are per core. Prints ratios. Not part of CI.
#
#   bench/h3/run.sh [duration_seconds] [connections] [streams_per_connection]
#
# Targets: gateway h3 req/s >= 1.5x Caddy h3; gateway h3 req/s >= 0.5x gateway h2 (TCP).
# The h3 load tool (quinn + h3, ./src) builds offline from the pinned versions. Release
# builds go to $CARGO_TARGET_DIR when set (the shared /work/rtarget), else target/.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

DURATION="${1:-10}"
CONNECTIONS="${2:-8}"
STREAMS="${3:-10}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UPSTREAM_PORT="$(free_port)"
CADDY_PORT="$(free_port)"
CADDY_HTTP_PORT="$(free_port)"
CADDY_ADMIN_PORT="$(free_port)"
GATEWAY_PORT="$(free_port)"

missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v caddy >/dev/null || missing+=(caddy)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -f "$WORK/upstream/nginx.pid" ]] && kill "$(cat "$WORK/upstream/nginx.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=bench.example -addext subjectAltName=DNS:bench.example \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null

# The upstream both servers forward to: nginx with a fixed small answer.
mkdir -p "$WORK/upstream/logs"
cat >"$WORK/upstream/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/upstream/nginx.pid;
error_log $WORK/upstream/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/upstream/body;
    proxy_temp_path $WORK/upstream/proxy;
    fastcgi_temp_path $WORK/upstream/fastcgi;
    uwsgi_temp_path $WORK/upstream/uwsgi;
    scgi_temp_path $WORK/upstream/scgi;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$UPSTREAM_PORT; location / { return 200 'hello from upstream\n'; } }
}
CONF
nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf"

# Caddy as the reference HTTP/3 reverse proxy; its state stays in $WORK.
mkdir -p "$WORK/caddy"
cat >"$WORK/caddy/Caddyfile" <<CONF
{
	admin 127.0.0.1:$CADDY_ADMIN_PORT
	default_bind 127.0.0.1
	http_port $CADDY_HTTP_PORT
	https_port $CADDY_PORT
	auto_https off
	skip_install_trust
	servers {
		protocols h1 h2 h3
	}
}
https://bench.example:$CADDY_PORT {
	tls $WORK/tls.crt $WORK/tls.key
	reverse_proxy 127.0.0.1:$UPSTREAM_PORT
}
CONF
HOME="$WORK/caddy" XDG_DATA_HOME="$WORK/caddy/data" XDG_CONFIG_HOME="$WORK/caddy/config" GOMAXPROCS=1 \
    caddy run --adapter caddyfile --config "$WORK/caddy/Caddyfile" >"$WORK/caddy.log" 2>&1 &
PIDS+=($!)

CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p gateway --example https_gateway
CARGO_TARGET_DIR="$TARGET_DIR/h3-bench" cargo build --release -q --offline --manifest-path "$HERE/Cargo.toml"
LOAD="$TARGET_DIR/h3-bench/release/h3-load"
BENCH_CERT="$WORK/tls.crt" BENCH_KEY="$WORK/tls.key" BENCH_UPSTREAM="127.0.0.1:$UPSTREAM_PORT" \
    BENCH_PORT="$GATEWAY_PORT" BENCH_THREADS=1 ISTHMUS_LOG=warn \
    "$TARGET_DIR/release/examples/https_gateway" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)

ready() { curl -skf --resolve "bench.example:$1:127.0.0.1" "https://bench.example:$1/" >/dev/null 2>&1; }
for _ in $(seq 1 100); do ready "$GATEWAY_PORT" && ready "$CADDY_PORT" && break; sleep 0.1; done
ready "$GATEWAY_PORT" || { cat "$WORK/gateway.log"; exit 1; }
ready "$CADDY_PORT" || { cat "$WORK/caddy.log"; exit 1; }

# h3-load prints "rps p50_ms p99_ms errors".
run_h3() {
    "$LOAD" --connect "127.0.0.1:$1" --host bench.example --connections "$CONNECTIONS" \
        --streams "$STREAMS" --duration "$DURATION"
}
# h2load: HTTP/2 over TLS with the same connections and streams. Prints "rps mean_ms".
run_h2load() {
    h2load -D "$DURATION" -c "$CONNECTIONS" -m "$STREAMS" -t 1 "--connect-to=127.0.0.1:$1" https://bench.example/ |
        awk '/finished in/ {for (i=1;i<=NF;i++) if ($i=="req/s,") rps=$(i-1)}
             /time for request:/ {v=$6; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; mean=v}
             END {print rps, mean}'
}

read -r g3_rps g3_p50 g3_p99 g3_err < <(run_h3 "$GATEWAY_PORT")
read -r c3_rps c3_p50 c3_p99 c3_err < <(run_h3 "$CADDY_PORT")
read -r g2_rps g2_mean < <(run_h2load "$GATEWAY_PORT")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
printf '%-26s %12s %12s %8s\n' "metric" "isthmus" "caddy" "ratio"
printf '%-26s %12s %12s %8s\n' "h3 req/s" "$g3_rps" "$c3_rps" "$(ratio "$g3_rps" "$c3_rps")"
printf '%-26s %12s %12s %8s\n' "h3 p50 ms" "$g3_p50" "$c3_p50" "$(ratio "$g3_p50" "$c3_p50")"
printf '%-26s %12s %12s %8s\n' "h3 p99 ms" "$g3_p99" "$c3_p99" "$(ratio "$g3_p99" "$c3_p99")"
printf '%-26s %12s %12s %8s\n' "h3 errors" "$g3_err" "$c3_err" "-"
printf '%-26s %12s %12s %8s\n' "isthmus h3 vs h2/TCP req/s" "$g3_rps" "$g2_rps" "$(ratio "$g3_rps" "$g2_rps")"
echo "targets: h3 req/s vs caddy >= 1.5; isthmus h3 vs its own h2 over TCP >= 0.5"
echo "($CONNECTIONS connections x $STREAMS streams, ${DURATION}s each, one worker/thread per server; the load tools share the 2 cores)"
echo "load: $(uptime)"
