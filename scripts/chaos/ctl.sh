#!/usr/bin/env bash
# The nemesis' hands: start, kill, pause and partition the nodes of a chaos cluster set up by run.sh, and
# change its membership. discovery-chaos calls it for every fault; it can also be used by hand while a run
# is going (as root, with CHAOS_STATE pointing at the run's output directory).
#
#   ctl.sh start N            start node N (first time with --peers, afterwards with --join)
#   ctl.sh kill N             kill -9 node N and wait until it is gone
#   ctl.sh term N             SIGTERM (graceful stop), wait up to 15 s, then kill -9
#   ctl.sh stop N | cont N    SIGSTOP / SIGCONT
#   ctl.sh drop TO FROM       node TO drops every packet from node FROM (one direction)
#   ctl.sh heal-net           remove every drop rule
#   ctl.sh wipe N             delete node N's data dir (N must be stopped)
#   ctl.sh member-remove N S  discovery cluster remove --node N --server S
#   ctl.sh member-add N S     discovery cluster add --node N --server S
#   ctl.sh learner-add N S    discovery cluster add --learner --node N --server S (a read replica)
#   ctl.sh promote N S        discovery cluster promote --node N --server S (learner -> voter)
#   ctl.sh demote N S         discovery cluster demote --node N --server S (voter -> learner)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

: "${CHAOS_STATE:?CHAOS_STATE must name the output directory of the run}"
# shellcheck source=/dev/null
. "$CHAOS_STATE/chaos.env"
BIN="$CHAOS_STATE/bin/discovery"

pid_of() { cat "$CHAOS_STATE/pids/$1" 2>/dev/null || true; }

wait_gone() {
    local pid=$1 tries=$2
    while pid_alive "$pid" && ((tries-- > 0)); do sleep 0.1; done
    ! pid_alive "$pid"
}

start_node() {
    local n=$1 mode pid
    pid=$(pid_of "$n")
    if [ -n "$pid" ] && pid_alive "$pid"; then
        echo "node $n already runs (pid $pid)" >&2
        return 0
    fi
    mkdir -p "$CHAOS_STATE/data" "$CHAOS_STATE/logs" "$CHAOS_STATE/pids" "$CHAOS_STATE/started"
    if [ -e "$CHAOS_STATE/started/$n" ] || [ "$n" -gt "${CHAOS_VOTERS:-$CHAOS_NODES}" ]; then
        # Restarts, and read replicas (added as learners by run.sh once they listen), join.
        mode=(--join)
    else
        mode=(--peers "$(chaos_peers "${CHAOS_VOTERS:-$CHAOS_NODES}")")
    fi
    touch "$CHAOS_STATE/started/$n"
    zone=()
    # shellcheck disable=SC2206 # CHAOS_ZONES is a list of words, one zone per node
    zones=(${CHAOS_ZONES:-})
    if [ ${#zones[@]} -ge "$n" ]; then zone=(--zone "${zones[$((n - 1))]}"); fi
    echo "=== $(date +%H:%M:%S.%N) start ${mode[0]}" >>"$CHAOS_STATE/logs/$n.log"
    # setsid: the node is no member of the caller's process group (a Ctrl-C reaches run.sh, whose
    # cleanup kills the nodes by pid). In a non-interactive shell setsid execs in place, so $! is the node.
    # shellcheck disable=SC2086 # CHAOS_NODE_FLAGS is a list of flags
    ip netns exec "$(chaos_ns "$n")" setsid "$BIN" --id "$n" --addr "$(chaos_addr "$n")" "${mode[@]}" "${zone[@]}" \
        --data-dir "$CHAOS_STATE/data/$n" --cluster-token "$CHAOS_TOKEN" $CHAOS_NODE_FLAGS \
        </dev/null >>"$CHAOS_STATE/logs/$n.log" 2>&1 &
    pid=$!
    echo "$pid" >"$CHAOS_STATE/pids/$n"
    # Up when it listens (or gone, which is a failure).
    for _ in $(seq 100); do
        pid_alive "$pid" || { echo "node $n exited at start (see logs/$n.log)" >&2; return 1; }
        if ip netns exec "$(chaos_ns "$n")" bash -c "exec 3<>/dev/tcp/$(chaos_ip "$n")/$CHAOS_PORT" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "node $n does not listen after 10 s" >&2
    return 1
}

signal_node() {
    local n=$1 sig=$2 pid
    pid=$(pid_of "$n")
    if [ -z "$pid" ] || ! pid_alive "$pid"; then
        echo "node $n is not running" >&2
        return 1
    fi
    kill "-$sig" "$pid"
}

cmd=${1:-}
shift || true
case "$cmd" in
start) start_node "$1" ;;
kill)
    pid=$(pid_of "$1")
    signal_node "$1" KILL
    wait_gone "$pid" 100
    ;;
term)
    pid=$(pid_of "$1")
    signal_node "$1" TERM
    wait_gone "$pid" 150 || { kill -9 "$pid" 2>/dev/null || true; wait_gone "$pid" 50; }
    ;;
stop) signal_node "$1" STOP ;;
cont) signal_node "$1" CONT ;;
drop) ip netns exec "$(chaos_ns "$1")" iptables -w 5 -A INPUT -s "$(chaos_ip "$2")" -j DROP ;;
heal-net)
    for ((i = 1; i <= CHAOS_NODES; i++)); do ip netns exec "$(chaos_ns "$i")" iptables -w 5 -F INPUT; done
    ;;
wipe)
    pid=$(pid_of "$1")
    if [ -n "$pid" ] && pid_alive "$pid"; then echo "node $1 is running" >&2; exit 1; fi
    rm -rf "${CHAOS_STATE:?}/data/$1"
    ;;
member-remove | member-add | learner-add | promote | demote)
    # shellcheck disable=SC2206 # one word: remove or add
    action=(${cmd#member-})
    case "$cmd" in learner-add) action=(add --learner) ;; promote | demote) action=("$cmd") ;; esac
    # Always from the control namespace: the cluster's addresses mean nothing anywhere else.
    ip netns exec "$CHAOS_CTL_NS" timeout 80 "$BIN" cluster "${action[@]}" --node "$(chaos_addr "$1")" \
        --server "$(chaos_addr "$2")" --cluster-token "$CHAOS_TOKEN" >/dev/null
    ;;
*)
    sed -n '2,19p' "$0" >&2
    exit 2
    ;;
esac
