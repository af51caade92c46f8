//! Refuse to send anything to an address that is neither loopback nor on a directly connected subnet.
//!
//! The chaos cluster lives on 10.77.0.0/24 inside network namespaces the run script creates; the workload
//! runs in the namespace that owns the bridge, where that subnet is a connected route. Run by mistake in
//! the host's namespace, the same addresses would be routed through the default gateway to someone else's
//! network: this check turns that mistake into an error before the first packet.

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};

/// One IPv4 route of `/proc/net/route`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination network.
    pub dest: Ipv4Addr,
    /// Network mask.
    pub mask: Ipv4Addr,
    /// Gateway (0.0.0.0 for a directly connected subnet).
    pub gateway: Ipv4Addr,
}

/// Parse the text of `/proc/net/route` (hex fields in host byte order, little-endian on Linux x86/arm).
pub fn parse_routes(text: &str) -> Vec<Route> {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(|v| Ipv4Addr::from(v.swap_bytes()));
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(Route { dest: hex(f.get(1)?)?, gateway: hex(f.get(2)?)?, mask: hex(f.get(7)?)? })
        })
        .collect()
}

/// True when `ip` is loopback or inside a connected (gateway-less, non-default) route.
pub fn is_local_target(ip: Ipv4Addr, routes: &[Route]) -> bool {
    if ip.is_loopback() {
        return true;
    }
    routes.iter().any(|r| {
        let mask = u32::from(r.mask);
        r.gateway.is_unspecified() && mask != 0 && u32::from(ip) & mask == u32::from(r.dest) & mask
    })
}

/// Check every `HOST:PORT`; the error names the first address that would leave this machine.
pub fn check_targets<'a>(addrs: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    let routes = std::fs::read_to_string("/proc/net/route").map(|t| parse_routes(&t)).unwrap_or_default();
    for addr in addrs {
        let resolved: Vec<SocketAddr> =
            addr.to_socket_addrs().map_err(|e| format!("cannot resolve {addr}: {e}"))?.collect();
        for socket in resolved {
            let ok = match socket {
                SocketAddr::V4(v4) => is_local_target(*v4.ip(), &routes),
                SocketAddr::V6(v6) => v6.ip().is_loopback(),
            };
            if !ok {
                return Err(format!(
                    "{addr} is neither loopback nor on a directly connected subnet of this network namespace; \
                     run the workload inside the chaos namespace (scripts/chaos/run.sh does)"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
    const CHAOS: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
br0\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn the_chaos_subnet_is_local_only_inside_its_namespace() {
        let ip = Ipv4Addr::new(10, 77, 0, 2);
        assert!(!is_local_target(ip, &parse_routes(HOST)), "host: routed through the default gateway");
        assert!(is_local_target(ip, &parse_routes(CHAOS)));
        assert!(is_local_target(Ipv4Addr::new(192, 0, 2, 9), &parse_routes(HOST)), "connected subnet");
        assert!(is_local_target(Ipv4Addr::LOCALHOST, &[]));
    }
}
