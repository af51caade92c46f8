#!/usr/bin/env bash
# Chaos test of a real discovery cluster (issue 5): 3 or 5 `discovery` processes, each in its own network
# namespace on a bridge, under a concurrent workload while a seeded nemesis kills (-9), pauses, partitions,
# restarts and re-members nodes; then heal, settle, and check the history (see README "Chaos testing").
#
#   scripts/chaos/run.sh [--duration 60] [--seed N] [--nodes 3|5] [--zones] [--out DIR] [--release]
#                        [--schedule FILE] [--keep-data]
#
# Short mode: --duration 60 --nodes 3 (≈ 2 minutes plus the build). Long mode: --duration 1800 --nodes 5.
# --zones: two zones (issue 14): nodes 1-3 voters of zone za (--peers 1..3), nodes 4-5 read replicas of
# zone zb (--join, then `cluster add --learner`); every other instance registers in zb through zb's nodes
# (falling back to za's), and the nemesis cuts zb from za both ways, kills or pauses the whole of zb, kills,
# pauses or cuts one voter (often the leader), demotes a voter or promotes a learner for a while; never
# more than one voter. Same rules, learners included.
# Needs root (network namespaces, iptables); without it, or without namespace support, exits 77.
# Exit: 0 no violation; 1 a safety violation (rules a-e: lost write, phantom/resurrected write, divergence,
# stale consistent read, false eviction); 2 the run could not be done (bad arguments, build or setup
# failure, the checker could not run, or the run checked nothing); 3 availability findings only (rules f, g:
# recovery bound, missed long-poll wake-up); 77 cannot run here. CI fails on 1 and 2.
# Everything it creates (namespaces, processes) is removed on exit, on Ctrl-C and on TERM; a crashed
# earlier run's leftovers are removed first. The output directory keeps the schedule, the history, the
# final state, the verdict and the node logs.
set -Eeuo pipefail
# Any failing step (build, namespaces, starting a node) means the run could not be done: exit 2, never 1,
# which CI reads as a safety violation.
trap 'exit 2' ERR
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

duration=60
seed=""
nodes=3
out=""
profile=debug
schedule=""
keep_data=0
zones=0
while [ $# -gt 0 ]; do
    case "$1" in
    --duration) duration=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --release) profile=release; shift ;;
    --schedule) schedule=$2; shift 2 ;;
    --keep-data) keep_data=1; shift ;;
    --zones) zones=1; shift ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$nodes" in 3 | 5) ;; *) echo "--nodes must be 3 or 5" >&2; exit 2 ;; esac
voters=$nodes
zone_list=""
suffix=""
layout=""
if [ "$zones" -eq 1 ]; then nodes=5 voters=3 zone_list="za za za zb zb" suffix=-zones layout=", zones $zone_list"; fi
seed=${seed:-$(( $(date +%s) % 100000 ))}
out=${out:-$root/target/chaos/$(date +%Y%m%d-%H%M%S)-seed$seed-n$nodes$suffix}

if [ "$(id -u)" -ne 0 ]; then
    echo "chaos: needs root (network namespaces and iptables); skipping" >&2
    exit 77
fi

# Tools: ip (iproute2) and iptables; installed only when missing.
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v iptables >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null; then
        echo "chaos: cannot install ${missing[*]}; skipping" >&2
        exit 77
    fi
fi
if ! ip netns add "${CHAOS_PREFIX}-probe" 2>/dev/null; then
    echo "chaos: network namespaces are not available here; skipping" >&2
    exit 77
fi
probe_ok=1
ip netns exec "${CHAOS_PREFIX}-probe" iptables -w 5 -A INPUT -s 10.77.0.1 -j DROP 2>/dev/null || probe_ok=0
ip netns del "${CHAOS_PREFIX}-probe"
if [ "$probe_ok" -ne 1 ]; then
    echo "chaos: iptables does not work in a network namespace here; skipping" >&2
    exit 77
fi

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM ERR
    chaos_teardown
    if [ "$keep_data" -eq 0 ] && [ -n "${CHAOS_STATE:-}" ]; then rm -rf "${CHAOS_STATE:?}/data"; fi
    [ -n "${CHAOS_STATE:-}" ] && log "output in $CHAOS_STATE"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

chaos_teardown # leftovers of an earlier run that was killed

if [ "${CHAOS_NO_BUILD:-0}" != 1 ]; then
    log "building ($profile)"
    build=(cargo build -p discovery -p discovery-chaos)
    [ "$profile" = release ] && build+=(--release)
    (cd "$root" && "${build[@]}")
fi
mkdir -p "$out/bin"
export CHAOS_STATE
CHAOS_STATE="$(cd "$out" && pwd)"
# Copies: other builds of the shared target dir must not change the binaries under test mid-run.
cp "$root/target/$profile/discovery" "$root/target/$profile/discovery-chaos" "$CHAOS_STATE/bin/"

token="chaos-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
lease=10s
poll_timeout=5s
cat >"$CHAOS_STATE/chaos.env" <<EOF
CHAOS_NODES=$nodes
CHAOS_VOTERS=$voters
CHAOS_ZONES="$zone_list"
CHAOS_TOKEN=$token
CHAOS_PREFIX=$CHAOS_PREFIX
CHAOS_NODE_FLAGS="--lease $lease --evict-interval 500ms --protect-threshold 0 --poll-timeout $poll_timeout --snapshot-logs 300"
EOF

log "seed $seed, $nodes nodes ($voters voters$layout), ${duration} s of faults; output in $CHAOS_STATE"
chaos_setup_net "$nodes"
for ((i = 1; i <= nodes; i++)); do bash "$here/ctl.sh" start "$i"; done
# The read replicas of --zones: learners, added through voter 1 once it is a member of an elected cluster
# (a few tries: the first election may still be going on).
for ((i = voters + 1; i <= nodes; i++)); do
    for try in 1 2 3 4 5 6 7 8 9 10; do
        if bash "$here/ctl.sh" learner-add "$i" 1; then break; fi
        [ "$try" -eq 10 ] && { log "node $i could not be added as a learner"; exit 2; }
        sleep 2
    done
done

run=(ip netns exec "$CHAOS_CTL_NS" "$CHAOS_STATE/bin/discovery-chaos" run --nodes "$(chaos_peers "$nodes")"
    --seed "$seed" --duration "$duration" --out "$CHAOS_STATE" --ctl "$here/ctl.sh"
    --lease "$lease" --poll-timeout "$poll_timeout")
[ "$zones" -eq 1 ] && run+=(--zones)
[ -n "$schedule" ] && run+=(--schedule "$schedule")
# In the background and waited for, so a TERM to this script is handled at once (bash runs traps only
# between commands, and `wait` is interruptible).
set +e
trap - ERR
CHAOS_TOKEN="$token" "${run[@]}" > >(tee "$CHAOS_STATE/run.log") 2>&1 &
wait $!
rc=$?
set -e
case "$rc" in
0 | 1 | 2 | 3) ;;
*) log "discovery-chaos ended abnormally (exit $rc): the run could not be done"; rc=2 ;;
esac
log "discovery-chaos exited $rc (0 pass, 1 safety violation, 2 could not run or checked nothing, 3 availability findings only)"
exit "$rc"
