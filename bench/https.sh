#!/usr/bin/env bash
# HTTPS keep-alive throughput and latency through the Isthmus gateway vs nginx, same machine,
# same certificate, same route (everything to one plain-HTTP upstream), one worker/thread
# each so the ratio is per core. Prints gateway/nginx ratios. Not part of CI.
#
#   bench/https.sh [duration_seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-32}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UPSTREAM_PORT="$(free_port)"
NGINX_PORT="$(free_port)"
GATEWAY_PORT="$(free_port)"

missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for dir in "$WORK/upstream" "$WORK/proxy"; do
        # A master that just daemonized may not have written its pid file yet.
        for _ in 1 2 3 4 5; do [[ -f "$dir/nginx.pid" || ! -d "$dir" ]] && break; sleep 0.2; done
        [[ -f "$dir/nginx.pid" ]] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=bench.example -addext subjectAltName=DNS:bench.example \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null

nginx_conf() { # dir, body
    mkdir -p "$1/logs"
    cat >"$1/nginx.conf" <<CONF
worker_processes 1;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    $2
}
CONF
}

# The upstream both proxies forward to: a fixed small answer.
nginx_conf "$WORK/upstream" "server { listen 127.0.0.1:$UPSTREAM_PORT; location / { return 200 'hello from upstream\n'; } }"
# nginx as the reference TLS-terminating reverse proxy, with pooled upstream connections.
nginx_conf "$WORK/proxy" "
    upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl http2;
        ssl_certificate $WORK/tls.crt;
        ssl_certificate_key $WORK/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection '';
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }"
nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf"
nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf"

cargo build --release -q -p gateway --example https_gateway
BENCH_CERT="$WORK/tls.crt" BENCH_KEY="$WORK/tls.key" BENCH_UPSTREAM="127.0.0.1:$UPSTREAM_PORT" \
    BENCH_PORT="$GATEWAY_PORT" BENCH_THREADS=1 ISTHMUS_LOG=warn \
    target/release/examples/https_gateway >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    curl -skf "https://127.0.0.1:$GATEWAY_PORT/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -skf "https://127.0.0.1:$GATEWAY_PORT/" >/dev/null || { cat "$WORK/gateway.log"; exit 1; }
curl -skf "https://127.0.0.1:$NGINX_PORT/" >/dev/null

# wrk: HTTP/1.1 keep-alive over TLS. Prints "rps p99_ms".
run_wrk() {
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H 'Host: bench.example' "https://127.0.0.1:$1/" |
        awk '/Requests\/sec/ {rps=$2}
             $1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99=v}
             END {print rps, p99}'
}
# h2load: HTTP/2 over TLS, 10 streams per connection. Prints "rps mean_ms".
run_h2load() {
    h2load -D "$DURATION" -c "$CONNECTIONS" -m 10 -t 2 "--connect-to=127.0.0.1:$1" https://bench.example/ |
        awk '/finished in/ {for (i=1;i<=NF;i++) if ($i=="req/s,") rps=$(i-1)}
             /time for request:/ {v=$6; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; mean=v}
             END {print rps, mean}'
}

read -r g1_rps g1_p99 < <(run_wrk "$GATEWAY_PORT")
read -r n1_rps n1_p99 < <(run_wrk "$NGINX_PORT")
read -r g2_rps g2_mean < <(run_h2load "$GATEWAY_PORT")
read -r n2_rps n2_mean < <(run_h2load "$NGINX_PORT")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
printf '%-22s %12s %12s %8s\n' "metric" "isthmus" "nginx" "ratio"
printf '%-22s %12s %12s %8s\n' "h1 req/s" "$g1_rps" "$n1_rps" "$(ratio "$g1_rps" "$n1_rps")"
printf '%-22s %12s %12s %8s\n' "h1 p99 ms" "$g1_p99" "$n1_p99" "$(ratio "$g1_p99" "$n1_p99")"
printf '%-22s %12s %12s %8s\n' "h2 req/s" "$g2_rps" "$n2_rps" "$(ratio "$g2_rps" "$n2_rps")"
printf '%-22s %12s %12s %8s\n' "h2 mean ms" "$g2_mean" "$n2_mean" "$(ratio "$g2_mean" "$n2_mean")"
echo "targets: req/s ratio >= 1.0, latency ratio <= 1.0 (one worker/thread each)"
