#!/usr/bin/env bash
# HTTPS keep-alive throughput and latency through the Isthmus gateway vs nginx, same machine,
# same certificate, same route (everything to one plain-HTTP upstream, the same standard
# headers added), same clients (wrk for HTTP/1.1, h2load for HTTP/2). Not part of CI.
#
#   bench/https.sh [duration_seconds] [connections]     req/s and p99 ratios, gateway / nginx
#                                                       (default 8 s, 32 connections, 5 rounds)
#   bench/https.sh --instructions [requests]            gateway and nginx instructions per request
#   bench/https.sh --tracing [duration_seconds] [connections]
#                                                       gateway h1 req/s with tracing off, at
#                                                       --trace-sampling 0 and 1, and the ratios
#
# "Per core": the gateway's data-plane threads and nginx's worker_processes are both
# $WORKERS (default 1), and the proxy under test is pinned to CPUs $PROXY_CPUS while the
# load generator and the upstream share $CLIENT_CPUS, so neither proxy competes with its own
# load. Each measurement alternates gateway and nginx $ROUNDS times and keeps the median, so
# a burst of load from elsewhere on the machine hits both.
#
# --instructions runs the gateway and nginx (one worker, no master) under callgrind and counts
# the instructions of N requests on one keep-alive connection minus those of N/5 (so the TLS
# handshake cancels out): an exact figure on a noisy machine, for before/after comparisons of
# the request path and against nginx.
# CALLGRIND_KEEP=dir keeps the dumps for callgrind_annotate. TRACE_SAMPLING=0 (or 1) counts
# them with tracing on at that sampling rate, exporting to a local OTLP/gRPC receiver.
#
# --tracing runs three gateways (same route, same pinned CPUs, one loaded at a time): tracing
# off, and tracing to a local OTLP/gRPC receiver (gateway/tests/telemetry_support's, with
# grpcio and opentelemetry-proto from PyPI) at sampling 0 and 1, alternating $ROUNDS rounds.
#
# The gateway is built with `cargo build --release`; set CARGO_TARGET_DIR to share a target
# directory (the binary is looked up under it), or GATEWAY_BIN to run a prebuilt binary.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=throughput
if [[ "${1:-}" == "--instructions" ]]; then
    MODE=instructions
    shift
    REQUESTS="${1:-5000}"
elif [[ "${1:-}" == "--tracing" ]]; then
    MODE=tracing
    shift
    DURATION="${1:-10}"
    CONNECTIONS="${2:-32}"
else
    DURATION="${1:-8}"
    CONNECTIONS="${2:-32}"
fi
WORKERS="${WORKERS:-1}"
# Five alternating rounds: on a shared machine three left single runs 10-15% apart.
ROUNDS="${ROUNDS:-5}"
CPUS="$(nproc)"
if ((CPUS >= 2)); then
    PROXY_CPUS="${PROXY_CPUS:-0-$((WORKERS - 1))}"
    CLIENT_CPUS="${CLIENT_CPUS:-$WORKERS-$((CPUS - 1))}"
else
    PROXY_CPUS="${PROXY_CPUS:-0}"
    CLIENT_CPUS="${CLIENT_CPUS:-0}"
fi
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UPSTREAM_PORT="$(free_port)"
NGINX_PORT="$(free_port)"
GATEWAY_PORT="$(free_port)"

missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
[[ "$MODE" == instructions ]] && ! command -v valgrind >/dev/null && missing+=(valgrind)
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
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=bench.example -addext subjectAltName=DNS:bench.example \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null

nginx_conf() { # dir, workers, body
    mkdir -p "$1/logs"
    cat >"$1/nginx.conf" <<CONF
worker_processes $2;
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
    $3
}
CONF
}

# The upstream both proxies forward to: a fixed small answer. It runs with the load generator
# so the proxy's CPUs are the proxy's alone.
nginx_conf "$WORK/upstream" 1 "server { listen 127.0.0.1:$UPSTREAM_PORT; location / { return 200 'hello from upstream\n'; } }"
# nginx as the reference TLS-terminating reverse proxy, with pooled upstream connections and
# the headers the gateway adds (x-forwarded-for/-proto, x-request-id).
nginx_conf "$WORK/proxy" "$WORKERS" "
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
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Request-Id \$request_id;
        }
    }"
taskset -c "$CLIENT_CPUS" nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf"

# GATEWAY_BIN runs a binary built earlier (e.g. to compare two commits) instead of building.
if [[ -z "${GATEWAY_BIN:-}" ]]; then
    cargo build --release -q -p gateway --example https_gateway
    GATEWAY_BIN="$TARGET_DIR/release/examples/https_gateway"
fi
gateway_env=(BENCH_CERT="$WORK/tls.crt" BENCH_KEY="$WORK/tls.key"
    BENCH_UPSTREAM="127.0.0.1:$UPSTREAM_PORT" BENCH_PORT="$GATEWAY_PORT"
    BENCH_THREADS="$WORKERS" ISTHMUS_LOG=warn)

wait_for() { # port, tries
    for _ in $(seq 1 "$2"); do
        curl -skf "https://127.0.0.1:$1/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    curl -skf "https://127.0.0.1:$1/" >/dev/null || { cat "$WORK/gateway.log" >&2; exit 1; }
}

client() { taskset -c "$CLIENT_CPUS" "$@"; }

# The telemetry tests' OTLP/gRPC receiver, on the client CPUs; sets OTLP_ENDPOINT.
start_otlp_receiver() {
    python3 -c 'import grpc, opentelemetry.proto' 2>/dev/null ||
        { echo "the OTLP receiver needs: pip install grpcio opentelemetry-proto" >&2; exit 1; }
    taskset -c "$CLIENT_CPUS" python3 gateway/tests/telemetry_support/otlp_receiver.py \
        --out "$WORK/spans.jsonl" --port-file "$WORK/otlp.port" >/dev/null 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do [[ -s "$WORK/otlp.port" ]] && break; sleep 0.1; done
    [[ -s "$WORK/otlp.port" ]] || { echo "the OTLP receiver did not start" >&2; exit 1; }
    OTLP_ENDPOINT="http://127.0.0.1:$(cat "$WORK/otlp.port")"
}
tracing_env() { # sampling → the gateway's environment for tracing at that rate
    echo "BENCH_OTLP_ENDPOINT=$OTLP_ENDPOINT BENCH_TRACE_SAMPLING=$1"
}
if [[ "$MODE" == instructions && -n "${TRACE_SAMPLING:-}" ]]; then
    start_otlp_receiver
    # shellcheck disable=SC2207
    gateway_env+=($(tracing_env "$TRACE_SAMPLING"))
fi

# --- instructions per request under callgrind ------------------------------------------------
if [[ "$MODE" == instructions ]]; then
    env "${gateway_env[@]}" valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" --compress-strings=no \
        "$GATEWAY_BIN" >"$WORK/gateway.log" 2>&1 &
    GATEWAY_PID=$!
    PIDS+=("$GATEWAY_PID")
    wait_for "$GATEWAY_PORT" 600
    # nginx counted the same way: its one worker is the process itself.
    valgrind --tool=callgrind --callgrind-out-file="$WORK/ng.out" \
        nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" -g 'daemon off; master_process off;' \
        >"$WORK/nginx-callgrind.log" 2>&1 &
    NGINX_CG_PID=$!
    PIDS+=("$NGINX_CG_PID")
    wait_for "$NGINX_PORT" 600
    # Counts of process $PID (serving on $PORT, dumping to $OUT.*) since the last zeroing,
    # dumped to a new file; prints the instruction total.
    count() { # h2load args...
        callgrind_control -z "$PID" >/dev/null 2>&1
        client h2load -c 1 -t 1 "--connect-to=127.0.0.1:$PORT" "$@" https://bench.example/ >"$WORK/h2load.txt"
        grep -q " 0 failed, 0 errored" "$WORK/h2load.txt" && grep -q "status codes: [0-9]* 2xx" "$WORK/h2load.txt" ||
            { cat "$WORK/h2load.txt" >&2; exit 1; }
        callgrind_control -d "$PID" >/dev/null 2>&1
        local dump
        dump="$(ls -t "$OUT".* | head -1)"
        awk '/^summary:|^totals:/ {print $2; exit}' "$dump"
        # CALLGRIND_KEEP=dir keeps each dump for callgrind_annotate.
        [[ -n "${CALLGRIND_KEEP:-}" ]] && cp "$dump" "$CALLGRIND_KEEP/callgrind.$KEEP_NAME.$(date +%s%N)"
        rm -f "$OUT".*
    }
    per_request() { # protocol flag...
        KEEP_NAME=warm count -n 100 "$@" >/dev/null # warm the upstream pool and first-use paths
        local small large
        small="$(KEEP_NAME=small count -n "$((REQUESTS / 5))" "$@")"
        large="$(KEEP_NAME=large count -n "$REQUESTS" "$@")"
        awk -v s="$small" -v l="$large" -v n="$((REQUESTS - REQUESTS / 5))" 'BEGIN { printf "%.0f", (l - s) / n }'
    }
    declare -A counted
    for target in gateway nginx; do
        if [[ "$target" == gateway ]]; then
            PID="$GATEWAY_PID" PORT="$GATEWAY_PORT" OUT="$WORK/cg.out"
        else
            PID="$NGINX_CG_PID" PORT="$NGINX_PORT" OUT="$WORK/ng.out"
        fi
        counted[$target.h1]="$(per_request --h1)"
        counted[$target.h2]="$(per_request -m 1)"
        counted[$target.h2m]="$(per_request -m 10)"
    done
    printf '%-34s %12s %12s %8s\n' "instructions/request" "isthmus" "nginx" "ratio"
    for row in h1:"h1 keep-alive" h2:"h2, 1 stream at a time" h2m:"h2, 10 concurrent streams"; do
        key="${row%%:*}"
        printf '%-34s %12s %12s %8s\n' "${row#*:}" "${counted[gateway.$key]}" "${counted[nginx.$key]}" \
            "$(awk -v a="${counted[gateway.$key]}" -v b="${counted[nginx.$key]}" 'BEGIN { printf "%.2f", a / b }')"
    done
    echo "($REQUESTS requests minus $((REQUESTS / 5)), one connection; uptime:$(uptime | sed 's/.*load/ load/'))"
    exit 0
fi

to_ms() { # wrk's "1.23ms" / "456.00us" / "1.01s" → milliseconds
    awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 }
        else if (v ~ /ms$/) sub(/ms/, "", v); else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 }
        printf "%.3f", v }'
}
# wrk: HTTP/1.1 keep-alive over TLS. Prints "rps p99_ms".
run_wrk() {
    local out
    out="$(client wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H 'Host: bench.example' "https://127.0.0.1:$1/")"
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")"
}
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# --- tracing off / sampling 0 / sampling 1 ---------------------------------------------------
if [[ "$MODE" == tracing ]]; then
    start_otlp_receiver
    declare -A ports samples
    for variant in off 0 1; do
        ports[$variant]="$(free_port)"
        extra=()
        # shellcheck disable=SC2207
        [[ "$variant" != off ]] && extra=($(tracing_env "$variant"))
        taskset -c "$PROXY_CPUS" env "${gateway_env[@]}" BENCH_PORT="${ports[$variant]}" "${extra[@]}" \
            "$GATEWAY_BIN" >"$WORK/gateway.log" 2>&1 &
        PIDS+=($!)
        wait_for "${ports[$variant]}" 100
    done
    for round in $(seq 1 "$ROUNDS"); do
        for variant in off 0 1; do
            read -r rps _ < <(run_wrk "${ports[$variant]}")
            samples[$variant]+="$rps "
        done
        echo "round $round/$ROUNDS done" >&2
    done
    value() { tr ' ' '\n' <<<"${samples[$1]}" | grep . | median; }
    off="$(value off)" zero="$(value 0)" full="$(value 1)"
    printf '%-28s %12s %8s\n' "gateway h1 req/s" "" "vs off"
    printf '%-28s %12s %8s\n' "tracing off" "$off" "1.00"
    printf '%-28s %12s %8s\n' "--trace-sampling 0" "$zero" "$(ratio "$zero" "$off")"
    printf '%-28s %12s %8s\n' "--trace-sampling 1" "$full" "$(ratio "$full" "$off")"
    echo "spans the receiver had at the end (batched, so fewer than requests): $(wc -l <"$WORK/spans.jsonl" 2>/dev/null || echo 0)"
    echo "$WORKERS worker(s) each on CPUs $PROXY_CPUS, clients, upstream and receiver on CPUs" \
        "$CLIENT_CPUS; median of $ROUNDS rounds of ${DURATION}s, $CONNECTIONS connections"
    echo "uptime:$(uptime | sed 's/.*load/ load/')"
    exit 0
fi

# --- throughput and latency -----------------------------------------------------------------
taskset -c "$PROXY_CPUS" env "${gateway_env[@]}" "$GATEWAY_BIN" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
taskset -c "$PROXY_CPUS" nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf"
wait_for "$GATEWAY_PORT" 100
wait_for "$NGINX_PORT" 100

# h2load: HTTP/2 over TLS, 10 streams per connection. Prints "rps p99_ms" (p99 from the
# per-request log: start, status, microseconds to the end of the response).
run_h2load() {
    local out
    out="$(client h2load -D "$DURATION" -c "$CONNECTIONS" -m 10 -t 1 --log-file="$WORK/h2.log" \
        "--connect-to=127.0.0.1:$1" https://bench.example/)"
    local rps p99
    rps="$(awk '/finished in/ {for (i=1;i<=NF;i++) if ($i=="req/s,") print $(i-1)}' <<<"$out")"
    p99="$(cut -f3 "$WORK/h2.log" | sort -n | awk '{v[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.3f", v[i]/1000}')"
    rm -f "$WORK/h2.log"
    echo "$rps $p99"
}

declare -A samples
for round in $(seq 1 "$ROUNDS"); do
    for target in gateway nginx; do
        port="$GATEWAY_PORT"
        [[ "$target" == nginx ]] && port="$NGINX_PORT"
        read -r rps p99 < <(run_wrk "$port")
        samples[$target.h1rps]+="$rps "
        samples[$target.h1p99]+="$p99 "
        read -r rps p99 < <(run_h2load "$port")
        samples[$target.h2rps]+="$rps "
        samples[$target.h2p99]+="$p99 "
    done
    echo "round $round/$ROUNDS done" >&2
done
value() { tr ' ' '\n' <<<"${samples[$1.$2]}" | grep . | median; }

printf '%-12s %12s %12s %8s\n' "metric" "isthmus" "nginx" "ratio"
for metric in h1rps:"h1 req/s" h1p99:"h1 p99 ms" h2rps:"h2 req/s" h2p99:"h2 p99 ms"; do
    key="${metric%%:*}"
    g="$(value gateway "$key")"
    n="$(value nginx "$key")"
    printf '%-12s %12s %12s %8s\n' "${metric#*:}" "$g" "$n" "$(ratio "$g" "$n")"
done
echo "targets: req/s ratio >= 1.0, p99 ratio <= 1.0; $WORKERS worker(s) each on CPUs $PROXY_CPUS," \
    "clients and upstream on CPUs $CLIENT_CPUS; median of $ROUNDS rounds of ${DURATION}s, $CONNECTIONS connections"
echo "uptime:$(uptime | sed 's/.*load/ load/')"
