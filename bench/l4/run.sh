#!/usr/bin/env bash
# Layer-4 benchmark of the isthmus gateway on loopback (not run by CI).
#
# Measures, each against a baseline in the same run:
#   1. bulk throughput through the gateway / direct TLS connection        (target >= 0.7)
#   2. added latency of 1 KiB echo round trips, p50 and p99               (target <= 50/100 us)
#   3. new TLS connections per second, gateway / HAProxy 2.6 req.ssl_sni  (target >= 1.0x)
#   4. gateway RSS with ~10,000 open passthrough connections              (target <= 40 MiB)
#
# Usage: bench/l4/run.sh   (SECONDS_PER_RUN=5 ROUNDS=3 HOLD=9900 CONCURRENCY=32 to change;
#        CARGO_TARGET_DIR=/work/rtarget to build into a shared release dir; BUILD=0 to use the
#        binaries already built there, e.g. when other work on the tree would force a rebuild;
#        ONLY=rss to measure only the RSS figure, without HAProxy or the timed runs)
# Needs: cargo, curl; installs haproxy with apt-get if missing. Run as a user that may.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
CONCURRENCY=${CONCURRENCY:-32}
LATENCY_COUNT=${LATENCY_COUNT:-20000}
ROUNDS=${ROUNDS:-3}
# The hard NOFILE limit here is 20000 and the gateway needs two descriptors per passthrough
# connection plus its own, so it cannot hold quite 10,000; the RSS is measured at HOLD and
# extrapolated linearly to 10,000.
HOLD=${HOLD:-9900}
# ONLY=rss stops after the RSS phase: the figure that changes with memory work, in seconds
# instead of minutes, and without HAProxy.
ONLY=${ONLY:-all}
case "$ONLY" in all | rss) ;; *) echo "ONLY must be all or rss, not $ONLY" >&2; exit 2 ;; esac

BACKEND=127.0.0.1:18443
GATEWAY=127.0.0.1:17443
HAPROXY=127.0.0.1:19443
SNI=outbound_.9080_._.echo.default.svc.cluster.local
GRPC=127.0.0.1:25012
MONITOR=127.0.0.1:25014
READY=127.0.0.1:25021
STATS=127.0.0.1:25090
ADMIN=127.0.0.1:25000

WORK=$(mktemp -d -t isthmus-l4-bench.XXXXXX)
PIDS=()
cleanup() {
    exec 3>&- 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '== %s\n' "$*" >&2; }

wait_for() { # what, command...
    local what=$1; shift
    for _ in $(seq 1 200); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for $what" >&2
    exit 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "${BUILD:-1}" != 0 ]; then
    log "building (release)"
    CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p isthmus
    CARGO_TARGET_DIR="$TARGET/l4-bench" cargo build --release --quiet --offline --manifest-path "$HERE/Cargo.toml"
fi
ISTHMUS="$TARGET/release/isthmus"
BENCH="$TARGET/l4-bench/release/l4-bench"

if [ "$ONLY" = all ] && ! command -v haproxy >/dev/null; then
    log "installing haproxy"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
fi
HAPROXY_VERSION=$([ "$ONLY" = rss ] || haproxy -v | head -1)

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "starting backend, discovery, gateway"
"$BENCH" certs --dir "$WORK"
"$BENCH" backend --listen "$BACKEND" --dir "$WORK" 2>"$WORK/backend.log" &
PIDS+=($!)

ISTHMUS_LOG=warn "$ISTHMUS" discovery --mesh "$HERE/mesh/mesh.yaml" --grpc "$GRPC" --monitor "$MONITOR" \
    2>"$WORK/discovery.log" &
PIDS+=($!)
wait_for "discovery" curl -fsS "http://$MONITOR/healthz/ready"

ISTHMUS_LOG=warn "$ISTHMUS" gateway --discovery "http://$GRPC" --name istio-eastwestgateway \
    --cluster cluster1 --network network1 --label istio=eastwestgateway \
    --listener-address 127.0.0.1 --port-map "15443=${GATEWAY##*:}" \
    --ready "$READY" --stats "$STATS" --admin "$ADMIN" 2>"$WORK/gateway.log" &
GATEWAY_PID=$!
PIDS+=($GATEWAY_PID)
wait_for "gateway readiness" curl -fsS "http://$READY/healthz/ready"
wait_for "the gateway to list the backend" sh -c "curl -fsS 'http://$ADMIN/endpoints' | grep -q '$BACKEND'"

figure() { # key, l4-bench arguments...: runs l4-bench and prints the value of key=
    local key=$1; shift
    "$BENCH" "$@" --dir "$WORK" --sni "$SNI" | awk -F= -v key="$key" '$1 == key {print $2}'
}

log "RSS with $HOLD open passthrough connections"
RSS_IDLE=$(rss_kib "$GATEWAY_PID")
mkfifo "$WORK/hold.in"
"$BENCH" hold --target "$GATEWAY" --sni "$SNI" --dir "$WORK" --count "$HOLD" \
    <"$WORK/hold.in" >"$WORK/hold.out" 2>"$WORK/hold.log" &
HOLD_PID=$!
PIDS+=($HOLD_PID)
exec 3>"$WORK/hold.in"
wait_for_held() { grep -q '^held=' "$WORK/hold.out"; }
for _ in $(seq 1 1200); do wait_for_held && break; sleep 0.1; done
HELD=$(awk -F= '$1 == "held" {print $2}' "$WORK/hold.out")
[ -n "$HELD" ] || { echo "the hold client did not finish opening connections" >&2; exit 1; }
RSS_HELD=$(rss_kib "$GATEWAY_PID")
RSS_HELD_ANON=$(awk '/^RssAnon:/ {print $2}' "/proc/$GATEWAY_PID/status")
RSS_HELD_FILE=$(awk '/^RssFile:/ {print $2}' "/proc/$GATEWAY_PID/status")
# SMAPS=file keeps the held gateway's memory map, to see which mappings the RSS is in.
[ -z "${SMAPS:-}" ] || cp "/proc/$GATEWAY_PID/smaps" "$SMAPS"
exec 3>&-
wait "$HOLD_PID" || true

rss_10k_mib() { awk -v idle="$1" -v held="$2" -v n="$3" 'BEGIN {printf "%.1f", (idle + (held - idle) * 10000 / n) / 1024}'; }
if [ "$ONLY" = rss ]; then
    printf '\nisthmus layer-4 benchmark, RSS only (load average before: %s, after: %s)\n' \
        "$LOAD_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'gateway RSS KiB idle %s, with %s held %s (anonymous %s, file %s)\n' \
        "$RSS_IDLE" "$HELD" "$RSS_HELD" "$RSS_HELD_ANON" "$RSS_HELD_FILE"
    printf 'gateway RSS KiB per held connection %s\n' \
        "$(awk -v a="$RSS_IDLE" -v b="$RSS_HELD" -v n="$HELD" 'BEGIN {printf "%.2f", (b - a) / n}')"
    printf 'gateway RSS MiB at 10,000 (linear) %s (target <= 40)\n' "$(rss_10k_mib "$RSS_IDLE" "$RSS_HELD" "$HELD")"
    exit 0
fi

log "starting haproxy"
cat >"$WORK/haproxy.cfg" <<CFG
global
    maxconn 8000
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend sni_in
    bind $HAPROXY
    tcp-request inspect-delay 5s
    tcp-request content accept if { req.ssl_hello_type 1 }
    use_backend be_echo if { req.ssl_sni -i $SNI }
backend be_echo
    server s1 $BACKEND
CFG
haproxy -f "$WORK/haproxy.cfg" -db 2>"$WORK/haproxy.log" &
PIDS+=($!)
wait_for "haproxy" "$BENCH" latency --target "$HAPROXY" --sni "$SNI" --dir "$WORK" --count 10

# Other work on the machine moves every figure; each comparison alternates its two sides over
# ROUNDS runs and keeps the median, so a burst of load hits both sides alike.
median() { tr ' ' '\n' <<<"$*" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
value() { awk -F= -v key="$1" '$1 == key {print $2}' <<<"$2"; }

log "throughput ($ROUNDS rounds)"
TP_D=(); TP_G=()
for _ in $(seq 1 "$ROUNDS"); do
    TP_D+=("$(figure throughput_mib_s throughput --target "$BACKEND" --seconds "$SECONDS_PER_RUN")")
    TP_G+=("$(figure throughput_mib_s throughput --target "$GATEWAY" --seconds "$SECONDS_PER_RUN")")
done
TP_DIRECT=$(median "${TP_D[@]}"); TP_GATEWAY=$(median "${TP_G[@]}")

log "latency ($ROUNDS rounds)"
L50_D=(); L99_D=(); L50_G=(); L99_G=()
for _ in $(seq 1 "$ROUNDS"); do
    OUT=$("$BENCH" latency --target "$BACKEND" --sni "$SNI" --dir "$WORK" --count "$LATENCY_COUNT")
    L50_D+=("$(value latency_p50_us "$OUT")"); L99_D+=("$(value latency_p99_us "$OUT")")
    OUT=$("$BENCH" latency --target "$GATEWAY" --sni "$SNI" --dir "$WORK" --count "$LATENCY_COUNT")
    L50_G+=("$(value latency_p50_us "$OUT")"); L99_G+=("$(value latency_p99_us "$OUT")")
done
LAT_DIRECT_P50=$(median "${L50_D[@]}"); LAT_DIRECT_P99=$(median "${L99_D[@]}")
LAT_GATEWAY_P50=$(median "${L50_G[@]}"); LAT_GATEWAY_P99=$(median "${L99_G[@]}")

log "new TLS connections per second ($ROUNDS rounds)"
HS_D=(); HS_G=(); HS_H=()
for _ in $(seq 1 "$ROUNDS"); do
    HS_G+=("$(figure handshakes_per_s handshakes --target "$GATEWAY" --seconds "$SECONDS_PER_RUN" --concurrency "$CONCURRENCY")")
    HS_H+=("$(figure handshakes_per_s handshakes --target "$HAPROXY" --seconds "$SECONDS_PER_RUN" --concurrency "$CONCURRENCY")")
    HS_D+=("$(figure handshakes_per_s handshakes --target "$BACKEND" --seconds "$SECONDS_PER_RUN" --concurrency "$CONCURRENCY")")
done
HS_DIRECT=$(median "${HS_D[@]}"); HS_GATEWAY=$(median "${HS_G[@]}"); HS_HAPROXY=$(median "${HS_H[@]}")

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
REJECTED=$(curl -fsS "http://$STATS/stats/prometheus" | awk '/^isthmus_rejected_connections_total/ {sum += $NF} END {print sum + 0}')

awk -v tp_d="$TP_DIRECT" -v tp_g="$TP_GATEWAY" \
    -v l50_d="$LAT_DIRECT_P50" -v l99_d="$LAT_DIRECT_P99" -v l50_g="$LAT_GATEWAY_P50" -v l99_g="$LAT_GATEWAY_P99" \
    -v hs_d="$HS_DIRECT" -v hs_g="$HS_GATEWAY" -v hs_h="$HS_HAPROXY" \
    -v rss_idle="$RSS_IDLE" -v rss_held="$RSS_HELD" -v held="$HELD" -v hold="$HOLD" \
    -v haproxy="$HAPROXY_VERSION" -v load="$LOAD_BEFORE" -v load_after="$LOAD_AFTER" -v rounds="$ROUNDS" -v rejected="$REJECTED" -v secs="$SECONDS_PER_RUN" -v conc="$CONCURRENCY" '
function verdict(ok) { return ok ? "ok" : "MISSED" }
BEGIN {
    tp_ratio = tp_g / tp_d
    add50 = l50_g - l50_d; add99 = l99_g - l99_d
    hs_ratio = hs_g / hs_h
    rss_idle_mib = rss_idle / 1024; rss_held_mib = rss_held / 1024
    rss_10k = (rss_idle + (rss_held - rss_idle) * 10000 / held) / 1024
    printf "\nisthmus layer-4 benchmark (loopback, median of %d alternating runs of %d s, %d concurrent for handshakes)\n", rounds, secs, conc
    printf "peer: %s; load average before the run: %s, after: %s\n\n", haproxy, load, load_after
    printf "%-44s %14s %14s %10s %8s\n", "figure", "baseline", "gateway", "ratio", "target"
    printf "%-44s %14.1f %14.1f %10.3f %8s  %s\n", "bulk echo throughput MiB/s (direct)", tp_d, tp_g, tp_ratio, ">=0.7", verdict(tp_ratio >= 0.7)
    printf "%-44s %14.1f %14.1f %10s %8s  %s\n", "1 KiB echo RTT p50 us (direct)", l50_d, l50_g, sprintf("%+.1f", add50), "<=50", verdict(add50 <= 50)
    printf "%-44s %14.1f %14.1f %10s %8s  %s\n", "1 KiB echo RTT p99 us (direct)", l99_d, l99_g, sprintf("%+.1f", add99), "<=100", verdict(add99 <= 100)
    printf "%-44s %14.0f %14.0f %10.3f %8s  %s\n", "new TLS connections/s (HAProxy req.ssl_sni)", hs_h, hs_g, hs_ratio, ">=1.0", verdict(hs_ratio >= 1.0)
    printf "%-44s %14.0f %14s %10s %8s\n", "new TLS connections/s (direct, reference)", hs_d, "-", "-", "-"
    printf "%-44s %14.1f %14.1f %10s %8s\n", sprintf("gateway RSS MiB (idle / %d held)", held), rss_idle_mib, rss_held_mib, "-", "-"
    printf "%-44s %14s %14.1f %10s %8s\n", "gateway RSS KiB per held connection", "-", (rss_held - rss_idle) / held, "-", "-"
    printf "%-44s %14s %14.1f %10s %8s  %s\n", "gateway RSS MiB at 10,000 (linear)", "-", rss_10k, "-", "<=40", verdict(rss_10k <= 40)
    printf "\nheld %d of %d requested; connections the gateway rejected during the run: %d\n", held, hold, rejected
}'
