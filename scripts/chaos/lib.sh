# shellcheck shell=bash
# Shared by run.sh and ctl.sh: the chaos cluster's layout and the network-namespace plumbing.
#
# Layout (only inside namespaces this script creates; the host's network is never touched):
#   ${PREFIX}-ctl   owns the bridge br0 (10.77.0.254/24) and runs the workload and the cluster CLI
#   ${PREFIX}-N     node N: eth0 = 10.77.0.N/24, a veth whose peer v-N is a port of br0 in ${PREFIX}-ctl
# A partition is iptables DROP in a node's namespace (INPUT from the peer's address); the workload's own
# address (10.77.0.254) is never dropped, so clients reach every live node (as they would in production).
#
# State directory ($CHAOS_STATE): chaos.env, bin/, data/N, logs/N.log, pids/N, started/N.

CHAOS_PREFIX="${CHAOS_PREFIX:-dchaos}"
CHAOS_SUBNET="10.77.0"
CHAOS_PORT=7100
CHAOS_CTL_NS="${CHAOS_PREFIX}-ctl"

chaos_ns() { echo "${CHAOS_PREFIX}-$1"; }
chaos_ip() { echo "${CHAOS_SUBNET}.$1"; }
chaos_addr() { echo "${CHAOS_SUBNET}.$1:${CHAOS_PORT}"; }

# "1=10.77.0.1:7100,2=...": the --peers list (and discovery-chaos --nodes).
chaos_peers() {
    local n=$1 i list=""
    for ((i = 1; i <= n; i++)); do list+="${list:+,}$i=$(chaos_addr "$i")"; done
    echo "$list"
}

log() { echo "[chaos $(date +%H:%M:%S)] $*" >&2; }

# True while $1 is a live (not zombie) process.
pid_alive() {
    local state
    [ -r "/proc/$1/stat" ] || return 1
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Kill every process of every namespace named ${CHAOS_PREFIX}-*, then delete the namespaces. Idempotent:
# also cleans up after a run that crashed or was killed.
chaos_teardown() {
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${CHAOS_PREFIX}-(ctl|[0-9]+)$" || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            if [ "$pid" != "$$" ]; then kill -9 "$pid" 2>/dev/null || true; fi
        done
    done
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${CHAOS_PREFIX}-(ctl|[0-9]+)$" || true); do
        ip netns del "$ns" 2>/dev/null || true
    done
}

# Create the control namespace with its bridge, and one namespace per node linked to it.
chaos_setup_net() {
    local n=$1 i ns
    ip netns add "$CHAOS_CTL_NS"
    ip -n "$CHAOS_CTL_NS" link set lo up
    ip -n "$CHAOS_CTL_NS" link add br0 type bridge
    ip -n "$CHAOS_CTL_NS" addr add "${CHAOS_SUBNET}.254/24" dev br0
    ip -n "$CHAOS_CTL_NS" link set br0 up
    for ((i = 1; i <= n; i++)); do
        ns=$(chaos_ns "$i")
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip link add "v-$i" netns "$CHAOS_CTL_NS" type veth peer name eth0 netns "$ns"
        ip -n "$CHAOS_CTL_NS" link set "v-$i" master br0 up
        ip -n "$ns" addr add "$(chaos_ip "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
    done
}
