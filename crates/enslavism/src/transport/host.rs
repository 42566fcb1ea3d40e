//! Which local addresses a socket bound for `ice_addresses` announces as
//! host candidates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The addresses a shard (or a client connection) announces for `ice_addresses`: each named one, and
/// for a wildcard every address of that family on the host's interfaces,
/// loopback and link-local ones excepted (name those to use them).
pub(crate) fn host_addresses(ice_addresses: &[IpAddr]) -> Vec<IpAddr> {
    expand(ice_addresses, &interface_addresses())
}

/// [`host_addresses`] with the interfaces' addresses given. A wildcard on a
/// host with no other address of its family (a container, CI, a laptop
/// offline) stands for loopback, as 0.9.0's libwebrtc did: announcing
/// nothing, or `0.0.0.0`, leaves browsers nothing to reach. An IPv4 wildcard
/// (the default) then announces `::1` too where the host has it, as 0.9.0 did.
fn expand(ice_addresses: &[IpAddr], interfaces: &[IpAddr]) -> Vec<IpAddr> {
    fn push(ip: IpAddr, out: &mut Vec<IpAddr>) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    let mut out = Vec::new();
    for ip in ice_addresses {
        if !ip.is_unspecified() {
            push(*ip, &mut out);
            continue;
        }
        let outside: Vec<IpAddr> = interfaces
            .iter()
            .filter(|found| found.is_ipv4() == ip.is_ipv4() && !found.is_loopback() && !is_link_local(found))
            .copied()
            .collect();
        if !outside.is_empty() {
            outside.into_iter().for_each(|found| push(found, &mut out));
        } else if ip.is_ipv4() {
            push(Ipv4Addr::LOCALHOST.into(), &mut out);
            if interfaces.contains(&Ipv6Addr::LOCALHOST.into()) {
                push(Ipv6Addr::LOCALHOST.into(), &mut out);
            }
        } else {
            push(Ipv6Addr::LOCALHOST.into(), &mut out);
        }
    }
    out
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn interface_addresses() -> Vec<IpAddr> {
    #[cfg(target_os = "linux")]
    {
        let Ok(interfaces) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
        interfaces
            .filter_map(|i| i.address)
            .filter_map(|a| {
                if let Some(v4) = a.as_sockaddr_in() {
                    Some(IpAddr::V4(v4.ip()))
                } else {
                    a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
                }
            })
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::expand;
    use std::net::IpAddr;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_wildcard_is_every_outside_address_or_else_loopback() {
        let host = ips(&["127.0.0.1", "10.1.2.3", "169.254.1.1", "::1", "fe80::1"]);
        assert_eq!(expand(&ips(&["0.0.0.0"]), &host), ips(&["10.1.2.3"]));
        // Loopback only: 0.9.0 announced 127.0.0.1 and ::1 there too.
        assert_eq!(expand(&ips(&["0.0.0.0"]), &ips(&["127.0.0.1", "::1"])), ips(&["127.0.0.1", "::1"]));
        assert_eq!(expand(&ips(&["0.0.0.0"]), &ips(&["127.0.0.1"])), ips(&["127.0.0.1"]));
        assert_eq!(expand(&ips(&["0.0.0.0", "::"]), &ips(&["127.0.0.1", "::1"])), ips(&["127.0.0.1", "::1"]));
        assert_eq!(expand(&ips(&["::"]), &host), ips(&["::1"]));
        assert_eq!(expand(&ips(&["127.0.0.1", "10.1.2.3"]), &host), ips(&["127.0.0.1", "10.1.2.3"]));
    }
}
