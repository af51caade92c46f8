#!/usr/bin/env bash
# Benchmarks of issue 7: builds in release mode, starts every server it needs on loopback ports, runs every
# scenario with target/release/discovery-bench, stops everything it started, and writes BENCHMARKS.md-ready
# tables (tables.md) and all figures (results.json) into the output directory.
#
#   scripts/bench/run.sh [--quick] [--out DIR] [--no-build] [--no-etcd] [--repeat N] [--scale N] [--only WHAT]
#
#   --quick     3 s windows after 1 s warm-ups, one run each, 3 poll rounds: under 3 minutes (build excluded)
#   (default)   10 s windows after 2 s warm-ups, median of 3 runs each, 10 poll rounds
#   --out DIR   where results go (default: target/bench/<mode>-<UTC time>)
#   --no-build  use the binaries already in target/release
#   --no-etcd   skip the side-by-side etcd scenarios
#   --scale N   instances of the scale scenario (default 1,000,000; 200,000 with --quick)
#   --only WHAT base (every scenario of issue 7), scale (issue 12: N instances on three nodes), zones (issue 14:
#               read replicas: their lag under 10,000 registers/s, their read throughput), both (base and
#               scale) or all
#               (default)
#   env DISCOVERY_BIN, BENCH_BIN: use these binaries instead of target/release/{discovery,discovery-bench}
#
# Needs: a Rust toolchain (all HTTP is done by discovery-bench, nothing else), and for the comparison the
# `etcd` 3.4 binary (Debian: apt-get install -y etcd-server; installed automatically when run as root).
# Nodes run with --lease 1h so that fixtures registered at the start are not evicted during the run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

MODE=full
OUT=""
BUILD=1
ETCD=1
REPEAT=""
SCALE=""
ONLY=both
ARGS=("$@")
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) MODE=quick ;;
        --no-build) BUILD=0 ;;
        --no-etcd) ETCD=0 ;;
        --out) OUT="${2:?--out needs a directory}" && shift ;;
        --out=*) OUT="${1#--out=}" ;;
        --repeat) REPEAT="${2:?--repeat needs a number}" && shift ;;
        --repeat=*) REPEAT="${1#--repeat=}" ;;
        --scale) SCALE="${2:?--scale needs a number}" && shift ;;
        --scale=*) SCALE="${1#--scale=}" ;;
        --only) ONLY="${2:?--only needs base, scale, zones, both or all}" && shift ;;
        --only=*) ONLY="${1#--only=}" ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p'
            exit 0
            ;;
        *)
            echo "run.sh: unknown argument $1 (see --help)" >&2
            exit 2
            ;;
    esac
    shift
done

if [[ "$MODE" == quick ]]; then
    DUR=3s WARM=1s REPEAT="${REPEAT:-1}" POLL_ROUNDS=3 POLL_SETTLE=500ms SCALE="${SCALE:-200000}"
else
    DUR=10s WARM=2s REPEAT="${REPEAT:-3}" POLL_ROUNDS=10 POLL_SETTLE=1s SCALE="${SCALE:-1000000}"
fi
case "$ONLY" in
    base | scale | zones | both | all) ;;
    *) echo "run.sh: --only takes base, scale, zones, both or all, not $ONLY" >&2 && exit 2 ;;
esac
wants() { [[ "$ONLY" == all || "$ONLY" == "$1" || ( "$ONLY" == both && "$1" != zones ) ]]; }
FAILOVER_TRIALS=5
CLIENTS=64
THREADS=1
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${OUT:-$TARGET_DIR/bench/$MODE-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

log() { printf '\n== %s  [%ss]\n' "$*" "$SECONDS" >&2; }

# ---------------------------------------------------------------- processes: everything we start is stopped
WORK="$(mktemp -d "${TMPDIR:-/tmp}/discovery-bench.XXXXXX")"
mkdir -p "$WORK/pids" "$WORK/logs"

alive() { [[ -r /proc/$1/stat ]] && ! grep -qE '^[0-9]+ \(.*\) Z ' "/proc/$1/stat" 2>/dev/null; }

# stop NAME: SIGTERM, up to 10 s for a clean exit, then SIGKILL.
stop() {
    local file="$WORK/pids/$1.pid" pid
    [[ -f "$file" ]] || return 0
    pid="$(cat "$file")"
    rm -f "$file"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
        alive "$pid" || break
        sleep 0.05
    done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local file
    for file in "$WORK"/pids/bench-*.pid "$WORK"/pids/*.pid; do
        [[ -e "$file" ]] || continue
        stop "$(basename "$file" .pid)"
    done
    if [[ $rc -ne 0 ]]; then
        echo "run.sh: failed (exit $rc); server logs:" >&2
        for file in "$WORK"/logs/*.log; do
            [[ -e "$file" ]] || continue
            echo "--- $file (last 5 lines)" >&2
            tail -n 5 "$file" >&2 || true
        done
    fi
    # Keep the server logs with the results (diagnosing a dip needs them).
    if [[ -d "$OUT" ]]; then
        rm -rf "$OUT/server-logs"
        cp -r "$WORK/logs" "$OUT/server-logs" 2> /dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
if [[ $BUILD -eq 1 ]]; then
    log "cargo build --release -p discovery -p discovery-bench"
    cargo build --release -p discovery -p discovery-bench
fi
DISCOVERY="${DISCOVERY_BIN:-$TARGET_DIR/release/discovery}"
BENCH="${BENCH_BIN:-$TARGET_DIR/release/discovery-bench}"
for bin in "$DISCOVERY" "$BENCH"; do
    [[ -x "$bin" ]] || { echo "run.sh: $bin missing (build first)" >&2; exit 1; }
done
# Private copies: a rebuild by someone else during the run must not change the binaries under test.
mkdir -p "$WORK/bin"
cp "$DISCOVERY" "$WORK/bin/discovery"
cp "$BENCH" "$WORK/bin/discovery-bench"
DISCOVERY="$WORK/bin/discovery"
BENCH="$WORK/bin/discovery-bench"

if [[ $ETCD -eq 1 ]] && ! command -v etcd > /dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get > /dev/null; then
        log "installing etcd-server (Debian package) for the comparison"
        if ! apt-get install -y etcd-server > "$WORK/logs/apt.txt" 2>&1; then
            apt-get update > /dev/null 2>&1 || true
            apt-get install -y etcd-server > "$WORK/logs/apt.txt" 2>&1 || true
        fi
    fi
    if ! command -v etcd > /dev/null; then
        echo "run.sh: etcd not found (apt-get install -y etcd-server); skipping the etcd scenarios" >&2
        ETCD=0
    fi
fi

START_SECONDS=$SECONDS
# bench ARGS...: run discovery-bench; in the background plus `wait`, so that Ctrl-C is handled at once.
bench() {
    "$BENCH" --threads "$THREADS" "$@" &
    local pid=$! rc=0
    echo "$pid" > "$WORK/pids/bench-$pid.pid"
    wait "$pid" || rc=$?
    rm -f "$WORK/pids/bench-$pid.pid"
    return "$rc"
}

# [C=clients] http NAME ARGS...: one scenario, JSON in $OUT/NAME.json
http() {
    local name=$1
    shift
    bench http --name "$name" --json "$OUT/$name.json" --concurrency "${C:-$CLIENTS}" \
        --duration "$DUR" --warmup "$WARM" --repeat "$REPEAT" "$@"
}

pid_of() { cat "$WORK/pids/$1.pid"; }

# start_node NAME ADDR DATA_DIR [ARGS...]
start_node() {
    local name=$1 addr=$2 dir=$3
    shift 3
    "$DISCOVERY" --addr "$addr" --data-dir "$dir" --lease 1h "$@" > "$WORK/logs/$name.log" 2>&1 &
    echo $! > "$WORK/pids/$name.pid"
}

# Writes go to a key space of KEYS instances (etcd: keys), the size of the largest registry the memory targets
# name: the first KEYS requests of a scenario register new instances, later ones register them again. Every
# one is a durable Raft write either way; an unbounded key space would instead measure a registry that grows by
# a million instances a minute, which no deployment holds (and whose snapshots then stall writes, see
# BENCHMARKS.md).
KEYS=100000
# The register form of discovery-bench's register_form(): ~260 bytes, two addresses, a version, metadata.
REG_TAIL='status=1&addrs=grpc%3A%2F%2F10.0.0.1%3A9000&addrs=http%3A%2F%2F10.0.0.1%3A8000&version=v1.2.3&metadata=%7B%22weight%22%3A%2210%22%2C%22cluster%22%3A%22c1%22%2C%22color%22%3A%22blue%22%7D'
FETCH10='/discovery/fetch?appid=bench.f10-0&env=bench&status=1'
FETCH100='/discovery/fetch?appid=bench.f100-0&env=bench&status=1'
RENEW_BODY='zone=z1&env=bench&appid=bench.renew0&hostname=r{n%1000}'

# fixtures ADDR: a 10-instance app, a 100-instance app, 1,000 instances to renew.
fixtures() {
    local url="http://$1/discovery/register"
    bench populate --url "$url" --instances 10 --per-app 10 --app-prefix bench.f10- --host-prefix f > /dev/null
    bench populate --url "$url" --instances 100 --per-app 100 --app-prefix bench.f100- --host-prefix g > /dev/null
    bench populate --url "$url" --instances 1000 --per-app 1000 --app-prefix bench.renew --host-prefix r > /dev/null
}

# start_member I: node I of the 3-node cluster described by PEERS and NODES (set before the call).
start_member() { start_node "n$1" "${NODES[$1]}" "$WORK/n$1" --id "$1" --peers "$PEERS"; }
cluster_cpu() { echo "--cpu-pid=$(pid_of n1)" "--cpu-pid=$(pid_of n2)" "--cpu-pid=$(pid_of n3)"; }

json_str() { local s=${1//\\/\\\\}; printf '"%s"' "${s//\"/\\\"}"; }

# ---------------------------------------------------------------- context
fsync_probe="$( (dd if=/dev/zero of="$WORK/fsync.probe" bs=4k count=200 oflag=dsync 2>&1 || true) | tail -n 1)"
rm -f "$WORK/fsync.probe"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
log "mode $MODE: windows $DUR after $WARM warm-up, $REPEAT run(s) each, $CLIENTS clients; results in $OUT"

if wants base; then
# ---------------------------------------------------------------- 1. one node
log "one node: start, fixtures"
read -r -a P <<< "$(bench free-ports 4)"
S="127.0.0.1:${P[0]}"
start_node single "$S" "$WORK/single"
bench wait --nodes "$S" > /dev/null
fixtures "$S"
SPID="--cpu-pid=$(pid_of single)"

log "one node: fetch"
http single-fetch10 --url "http://$S$FETCH10" "$SPID"
http single-fetch100 --url "http://$S$FETCH100" "$SPID"
http single-fetch10-consistent --url "http://$S$FETCH10&consistent=1" "$SPID"
log "one node: renew"
http single-renew --url "http://$S/discovery/renew" --method POST --body-template "$RENEW_BODY" \
    --raft-status "$S" "$SPID"
log "one node: register (durable)"
http single-register --url "http://$S/discovery/register" --method POST \
    --body-template "zone=z1&env=bench&appid=bench.reg{n%100}&hostname=reg-{n%$KEYS}&$REG_TAIL" --raft-status "$S" \
    --metrics "$S" "$SPID"
# The same with 4x the clients: if the rate grows with the clients, the bound is the batch cycle, not the disk.
C=256 http single-register-256 --url "http://$S/discovery/register" --method POST \
    --body-template "zone=z1&env=bench&appid=bench.reg{n%100}&hostname=reg-{n%$KEYS}&$REG_TAIL" --raft-status "$S" \
    --metrics "$S" "$SPID"
stop single

# ---------------------------------------------------------------- 2. three nodes
PEERS="1=127.0.0.1:${P[1]},2=127.0.0.1:${P[2]},3=127.0.0.1:${P[3]}"
NODES=("" "127.0.0.1:${P[1]}" "127.0.0.1:${P[2]}" "127.0.0.1:${P[3]}")
ALL_NODES="${NODES[1]},${NODES[2]},${NODES[3]}"

log "three nodes: start, fixtures"
for i in 1 2 3; do start_member "$i"; done
LEAD=$(($(bench wait --nodes "$ALL_NODES") + 1))
FOLLOWERS=()
for i in 1 2 3; do
    if [[ $i -ne $LEAD ]]; then FOLLOWERS+=("$i"); fi
done
L="${NODES[$LEAD]}" F1="${NODES[${FOLLOWERS[0]}]}" F2="${NODES[${FOLLOWERS[1]}]}"
fixtures "$L"
bench wait --nodes "$ALL_NODES" --caught-up > /dev/null
read -r -a CPU <<< "$(cluster_cpu)"

log "three nodes: fetch on a follower"
http cluster-fetch10-follower --url "http://$F1$FETCH10" "${CPU[@]}"
http cluster-fetch100-follower --url "http://$F1$FETCH100" "${CPU[@]}"
http cluster-fetch10-consistent-follower --url "http://$F1$FETCH10&consistent=1" "${CPU[@]}"
log "three nodes: renew through the followers"
http cluster-renew-followers --url "http://$F1/discovery/renew,http://$F2/discovery/renew" --method POST \
    --body-template "$RENEW_BODY" --raft-status "$L" --raft-status "$F1" --raft-status "$F2" "${CPU[@]}"
C=256 http cluster-renew-followers-256 --url "http://$F1/discovery/renew,http://$F2/discovery/renew" --method POST \
    --body-template "$RENEW_BODY" "${CPU[@]}"
log "three nodes: register (durable) through the leader, then through the followers"
http cluster-register-leader --url "http://$L/discovery/register" --method POST \
    --body-template "zone=z1&env=bench&appid=bench.reg{n%100}&hostname=reg-{n%$KEYS}&$REG_TAIL" --raft-status "$L" \
    --metrics "$L" "${CPU[@]}"
http cluster-register-followers --url "http://$F1/discovery/register,http://$F2/discovery/register" --method POST \
    --body-template "zone=z1&env=bench&appid=bench.reg{n%100}&hostname=regf-{n%$KEYS}&$REG_TAIL" --raft-status "$L" \
    --metrics "$L" "${CPU[@]}"

log "three nodes: 1,000 long polls"
bench wait --nodes "$ALL_NODES" --caught-up > /dev/null
bench polls --nodes "$ALL_NODES" --write-node "$L" --waiters 1000 --rounds "$POLL_ROUNDS" --settle "$POLL_SETTLE" \
    --json "$OUT/cluster-polls.json"

log "three nodes: failover (kill -9 the leader) x $FAILOVER_TRIALS"
for t in $(seq 1 "$FAILOVER_TRIALS"); do
    killed=$(bench failover --nodes "$ALL_NODES" --pids "$(pid_of n1),$(pid_of n2),$(pid_of n3)" --trial "$t" \
        --json "$OUT/failover-$t.json")
    i=$((killed + 1))
    wait "$(pid_of "n$i")" 2> /dev/null || true
    start_member "$i"
    bench wait --nodes "$ALL_NODES" --caught-up --timeout 60s > /dev/null
done
for i in 1 2 3; do stop "n$i"; done

# ---------------------------------------------------------------- 3. memory, disk, restart
log "one node: 10,000 then 100,000 instances, memory, restart"
read -r -a P <<< "$(bench free-ports 4)"
R="127.0.0.1:${P[0]}"
start_node restart "$R" "$WORK/restart"
bench wait --nodes "$R" > /dev/null
bench populate --url "http://$R/discovery/register" --instances 10000 --per-app 100 > /dev/null
sleep 1
bench footprint --name "1 node" --instances 10000 --node "node=$(pid_of restart)=$WORK/restart" \
    --json "$OUT/footprint-single-10k.json"
bench populate --url "http://$R/discovery/register" --instances 90000 --start 10000 --per-app 100 > /dev/null
sleep 1
bench footprint --name "1 node" --instances 100000 --node "node=$(pid_of restart)=$WORK/restart" \
    --json "$OUT/footprint-single-100k.json"
stop restart
bench startup --ready-url "http://$R/healthz" --check-url "http://$R/discovery/fetch?appid=bench.pop999&env=bench&status=1" \
    --pid-file "$WORK/pids/restart.pid" --log "$WORK/logs/restart-2.log" --instances 100000 \
    --json "$OUT/startup-single-100k.json" -- "$DISCOVERY" --addr "$R" --data-dir "$WORK/restart" --lease 1h
sleep 1
bench footprint --name "1 node, restarted" --instances 100000 --node "node=$(pid_of restart)=$WORK/restart" \
    --json "$OUT/footprint-single-100k-restarted.json"
stop restart
rm -rf "$WORK/restart"

log "three nodes: 10,000 then 100,000 instances, memory, a follower restarted"
PEERS="1=127.0.0.1:${P[1]},2=127.0.0.1:${P[2]},3=127.0.0.1:${P[3]}"
NODES=("" "127.0.0.1:${P[1]}" "127.0.0.1:${P[2]}" "127.0.0.1:${P[3]}")
ALL_NODES="${NODES[1]},${NODES[2]},${NODES[3]}"
for i in 1 2 3; do rm -rf "$WORK/n$i"; start_member "$i"; done
LEAD=$(($(bench wait --nodes "$ALL_NODES") + 1))
L="${NODES[$LEAD]}"
FOLLOWER=$((LEAD % 3 + 1))
footprint_cluster() {
    bench footprint --name "3 nodes" --instances "$1" --json "$OUT/footprint-cluster-$2.json" \
        --node "n1=$(pid_of n1)=$WORK/n1" --node "n2=$(pid_of n2)=$WORK/n2" --node "n3=$(pid_of n3)=$WORK/n3"
}
bench populate --url "http://$L/discovery/register" --instances 10000 --per-app 100 > /dev/null
bench wait --nodes "$ALL_NODES" --caught-up > /dev/null
sleep 1
footprint_cluster 10000 10k
bench populate --url "http://$L/discovery/register" --instances 90000 --start 10000 --per-app 100 > /dev/null
bench wait --nodes "$ALL_NODES" --caught-up > /dev/null
sleep 1
footprint_cluster 100000 100k
stop "n$FOLLOWER"
bench startup --ready-url "http://${NODES[$FOLLOWER]}/healthz" \
    --check-url "http://${NODES[$FOLLOWER]}/discovery/fetch?appid=bench.pop999&env=bench&status=1" \
    --pid-file "$WORK/pids/n$FOLLOWER.pid" --log "$WORK/logs/n$FOLLOWER-2.log" --instances 100000 \
    --json "$OUT/startup-follower-100k.json" -- \
    "$DISCOVERY" --addr "${NODES[$FOLLOWER]}" --data-dir "$WORK/n$FOLLOWER" --lease 1h --id "$FOLLOWER" --peers "$PEERS"
for i in 1 2 3; do stop "n$i"; done
for i in 1 2 3; do rm -rf "$WORK/n$i"; done

# ---------------------------------------------------------------- 4. etcd, side by side
ETCD_VERSION=""
if [[ $ETCD -eq 1 ]]; then
    ETCD_VERSION="$(etcd --version 2> /dev/null | head -n 1)"
    log "etcd 3 nodes ($ETCD_VERSION): start"
    read -r -a P <<< "$(bench free-ports 6)"
    E=("" "127.0.0.1:${P[0]}" "127.0.0.1:${P[1]}" "127.0.0.1:${P[2]}")
    IC="e1=http://127.0.0.1:${P[3]},e2=http://127.0.0.1:${P[4]},e3=http://127.0.0.1:${P[5]}"
    for i in 1 2 3; do
        etcd --name "e$i" --data-dir "$WORK/e$i" \
            --listen-client-urls "http://${E[$i]}" --advertise-client-urls "http://${E[$i]}" \
            --listen-peer-urls "http://127.0.0.1:${P[$((i + 2))]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${P[$((i + 2))]}" \
            --initial-cluster "$IC" --initial-cluster-state new --initial-cluster-token discovery-bench \
            --logger zap --log-level warn > "$WORK/logs/e$i.log" 2>&1 &
        echo $! > "$WORK/pids/e$i.pid"
    done
    ALL_E="${E[1]},${E[2]},${E[3]}"
    ELEAD=$(($(bench wait --kind etcd --nodes "$ALL_E") + 1))
    EF=()
    for i in 1 2 3; do
        if [[ $i -ne $ELEAD ]]; then EF+=("$i"); fi
    done
    EL="${E[$ELEAD]}" EF1="${E[${EF[0]}]}" EF2="${E[${EF[1]}]}"
    ECPU=("--cpu-pid=$(pid_of e1)" "--cpu-pid=$(pid_of e2)" "--cpu-pid=$(pid_of e3)")
    b64() { printf '%s' "$1" | base64 -w0; }
    VALUE="$(b64 "$(head -c 300 /dev/zero | tr '\0' 'v')")"
    # Keys are <12-byte prefix><12 digits>: base64(prefix) + {b64n} is base64 of the whole key.
    bench http --name etcd-fixtures --requests 10 --concurrency 1 --method POST --expect http200 \
        --content-type application/json --url "http://$EL/v3/kv/put" \
        --body-template "{\"key\":\"$(b64 /bench/r10/k){b64n}\",\"value\":\"$VALUE\"}" > /dev/null
    RANGE="{\"key\":\"$(b64 /bench/r10/k)\",\"range_end\":\"$(b64 /bench/r10/l)\",\"serializable\":true}"
    bench wait --kind etcd --nodes "$ALL_E" > /dev/null

    log "etcd: serializable range of 10 keys on a follower"
    http etcd-range-follower --url "http://$EF1/v3/kv/range" --method POST --expect http200 \
        --content-type application/json --body-template "$RANGE" "${ECPU[@]}"
    log "etcd: put (300-byte values) to the leader, then through the followers"
    PUT="{\"key\":\"$(b64 /bench/put/k){b64n%$KEYS}\",\"value\":\"$VALUE\"}"
    http etcd-put-leader --url "http://$EL/v3/kv/put" --method POST --expect http200 \
        --content-type application/json --body-template "$PUT" "${ECPU[@]}"
    http etcd-put-followers --url "http://$EF1/v3/kv/put,http://$EF2/v3/kv/put" --method POST --expect http200 \
        --content-type application/json --body-template "$PUT" "${ECPU[@]}"
    for i in 1 2 3; do stop "e$i"; done
fi

fi

# ---------------------------------------------------------------- 5. scale (issue 12)
if wants scale; then
    log "scale: $SCALE instances on three nodes, registered through all three at 128 clients"
    read -r -a P <<< "$(bench free-ports 4)"
    PEERS="1=127.0.0.1:${P[1]},2=127.0.0.1:${P[2]},3=127.0.0.1:${P[3]}"
    NODES=("" "127.0.0.1:${P[1]}" "127.0.0.1:${P[2]}" "127.0.0.1:${P[3]}")
    ALL_NODES="${NODES[1]},${NODES[2]},${NODES[3]}"
    for i in 1 2 3; do rm -rf "$WORK/n$i"; start_member "$i"; done
    LEAD=$(($(bench wait --nodes "$ALL_NODES") + 1))
    L="${NODES[$LEAD]}"
    FOLLOWER=$((LEAD % 3 + 1))
    F="${NODES[$FOLLOWER]}"
    read -r -a CPU <<< "$(cluster_cpu)"
    SCALE_FORM="zone=z1&env=bench&appid=bench.s{n/100}&hostname=s-{n}&$REG_TAIL"
    C=128 bench http --name scale-populate --requests "$SCALE" --concurrency 128 --max-time 3600s \
        --url "http://${NODES[1]}/discovery/register,http://${NODES[2]}/discovery/register,http://${NODES[3]}/discovery/register" \
        --method POST --body-template "$SCALE_FORM" --raft-status "$L" --metrics "$L" "${CPU[@]}" \
        --json "$OUT/scale-populate.json"
    bench wait --nodes "$ALL_NODES" --caught-up --timeout 300s > /dev/null
    sleep 2
    bench footprint --name "3 nodes" --instances "$SCALE" --json "$OUT/scale-footprint.json" \
        --node "n1=$(pid_of n1)=$WORK/n1" --node "n2=$(pid_of n2)=$WORK/n2" --node "n3=$(pid_of n3)=$WORK/n3"

    log "scale: a 100-instance app fetched from a follower holding $SCALE instances"
    http scale-fetch100-follower --url "http://$F/discovery/fetch?appid=bench.s0&env=bench&status=1" "${CPU[@]}"

    log "scale: a snapshot of the whole registry built on the leader under a steady write load"
    # Writes re-register the populated instances (the registry does not grow); the snapshot is requested 2 s
    # into the 12 s window, whose report has the worst latency and every error.
    bench snapshot --node "$L" --after 2s --instances "$SCALE" --data-dir "$WORK/n$LEAD" \
        --json "$OUT/scale-snapshot.json" &
    SNAP_PID=$!
    C=64 bench http --name scale-writes-during-snapshot --duration 12s --warmup 0s --repeat 1 --concurrency 64 \
        --url "http://$L/discovery/register" --method POST \
        --body-template "zone=z1&env=bench&appid=bench.s{n/100}&hostname=s-{n%$SCALE}&$REG_TAIL" \
        --metrics "$L" "${CPU[@]}" --json "$OUT/scale-writes-during-snapshot.json"
    wait "$SNAP_PID"

    log "scale: a 4th node joins (cluster add) and catches up by snapshot"
    N4="127.0.0.1:${P[0]}"
    "$DISCOVERY" --addr "$N4" --data-dir "$WORK/n4" --lease 1h --id 4 --join > "$WORK/logs/n4.log" 2>&1 &
    echo $! > "$WORK/pids/n4.pid"
    bench join --discovery "$DISCOVERY" --server "$L" --node "$N4" --nodes "$ALL_NODES,$N4" --instances "$SCALE" \
        --json "$OUT/scale-join.json"
    stop n4

    log "scale: a follower restarted to serving"
    stop "n$FOLLOWER"
    bench startup --ready-url "http://$F/healthz" \
        --check-url "http://$F/discovery/fetch?appid=bench.s0&env=bench&status=1" \
        --pid-file "$WORK/pids/n$FOLLOWER.pid" --log "$WORK/logs/n$FOLLOWER-2.log" --instances "$SCALE" \
        --json "$OUT/scale-startup-follower.json" -- \
        "$DISCOVERY" --addr "$F" --data-dir "$WORK/n$FOLLOWER" --lease 1h --id "$FOLLOWER" --peers "$PEERS"
    for i in 1 2 3; do stop "n$i"; done
    for i in 1 2 3 4; do rm -rf "$WORK/n$i"; done
fi

# ---------------------------------------------------------------- 6. zones (issue 14)
if wants zones; then
    log "zones: 3 voters (zone za) + 2 read replicas (learners, zone zb)"
    read -r -a P <<< "$(bench free-ports 5)"
    PEERS="1=127.0.0.1:${P[0]}@za,2=127.0.0.1:${P[1]}@za,3=127.0.0.1:${P[2]}@za"
    NODES=("" "127.0.0.1:${P[0]}" "127.0.0.1:${P[1]}" "127.0.0.1:${P[2]}" "127.0.0.1:${P[3]}" "127.0.0.1:${P[4]}")
    for i in 1 2 3; do rm -rf "$WORK/n$i"; start_node "n$i" "${NODES[$i]}" "$WORK/n$i" --id "$i" --zone za --peers "$PEERS"; done
    VOTERS="${NODES[1]},${NODES[2]},${NODES[3]}"
    LEAD=$(($(bench wait --nodes "$VOTERS") + 1))
    L="${NODES[$LEAD]}"
    FOLLOWER=$((LEAD % 3 + 1))
    F="${NODES[$FOLLOWER]}"
    for i in 4 5; do
        rm -rf "$WORK/n$i"
        start_node "n$i" "${NODES[$i]}" "$WORK/n$i" --id "$i" --zone zb --join
        for _ in $(seq 1 100); do
            "$DISCOVERY" cluster status --server "${NODES[$i]}" > /dev/null 2>&1 && break
            sleep 0.1
        done
        "$DISCOVERY" cluster add --learner --node "${NODES[$i]}" --server "$L" > /dev/null
    done
    R="${NODES[4]}"
    ALL5="$VOTERS,${NODES[4]},${NODES[5]}"
    fixtures "$L"
    bench wait --nodes "$ALL5" --caught-up > /dev/null
    read -r -a ZCPU <<< "--cpu-pid=$(pid_of n1) --cpu-pid=$(pid_of n2) --cpu-pid=$(pid_of n3) --cpu-pid=$(pid_of n4) --cpu-pid=$(pid_of n5)"

    log "zones: learner replication lag while the leader takes 10,000 registers/s"
    bench lag --node "$L" --after 2s --duration 10s --json "$OUT/zones-lag.json" &
    LAG_PID=$!
    C=128 bench http --name zones-register-10k --rate 10000 --duration 12s --warmup 0s --repeat 1 --concurrency 128 \
        --url "http://$L/discovery/register" --method POST \
        --body-template "zone=z1&env=bench&appid=bench.z{n%100}&hostname=z-{n%$KEYS}&$REG_TAIL" \
        "${ZCPU[@]}" --json "$OUT/zones-register-10k.json"
    wait "$LAG_PID"
    bench wait --nodes "$ALL5" --caught-up > /dev/null

    log "zones: reads on a learner against a follower"
    http zones-fetch100-learner --url "http://$R$FETCH100" "--cpu-pid=$(pid_of n4)"
    http zones-fetch100-follower --url "http://$F$FETCH100" "--cpu-pid=$(pid_of "n$FOLLOWER")"
    POLL_NOW='/discovery/polls?appid=bench.f100-0&env=bench&hostname=bench-poller&latest_timestamp=0'
    http zones-polls-learner --url "http://$R$POLL_NOW" "--cpu-pid=$(pid_of n4)"
    http zones-polls-follower --url "http://$F$POLL_NOW" "--cpu-pid=$(pid_of "n$FOLLOWER")"
    log "zones: total read throughput over 3 nodes, then over 3 nodes + 2 learners"
    http zones-fetch100-3nodes --url "http://${NODES[1]}$FETCH100,http://${NODES[2]}$FETCH100,http://${NODES[3]}$FETCH100" \
        "${ZCPU[@]}"
    http zones-fetch100-5nodes --url "http://${NODES[1]}$FETCH100,http://${NODES[2]}$FETCH100,http://${NODES[3]}$FETCH100,http://${NODES[4]}$FETCH100,http://${NODES[5]}$FETCH100" \
        "${ZCPU[@]}"
    for i in 1 2 3 4 5; do stop "n$i"; done
    for i in 1 2 3 4 5; do rm -rf "$WORK/n$i"; done
fi

# ---------------------------------------------------------------- report
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
{
    printf '{\n'
    printf '  "command": %s,\n' "$(json_str "scripts/bench/run.sh${ARGS[*]:+ ${ARGS[*]}}")"
    printf '  "mode": %s,\n' "$(json_str "$MODE")"
    printf '  "date": %s,\n' "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
    printf '  "git": %s,\n' "$(json_str "$(git rev-parse --short HEAD 2> /dev/null || echo unknown) (plus uncommitted changes: $(git status --porcelain 2> /dev/null | wc -l) files)")"
    printf '  "etcd_version": %s,\n' "$(json_str "${ETCD_VERSION:-not run}")"
    printf '  "loadavg_start": %s,\n' "$(json_str "$LOAD_START")"
    printf '  "loadavg_end": %s,\n' "$(json_str "$LOAD_END")"
    printf '  "seconds": %s,\n' "$((SECONDS - START_SECONDS))"
    printf '  "settings": %s,\n' "$(json_str "$CLIENTS clients, $THREADS load-generator thread, windows $DUR after $WARM warm-up, $REPEAT run(s) per scenario; data dirs on $(df -T "$WORK" | awk 'NR==2 {print $2}'); fsync probe (dd 4 KiB O_DSYNC x200): $fsync_probe")"
    printf '  "fsync_probe": %s\n' "$(json_str "$fsync_probe")"
    printf '}\n'
} > "$OUT/meta.json"
bench report --dir "$OUT" --md "$OUT/tables.md" --json "$OUT/results.json" > /dev/null
log "done in $((SECONDS - START_SECONDS)) s (build excluded): $OUT/tables.md, $OUT/results.json"
cat "$OUT/tables.md"
