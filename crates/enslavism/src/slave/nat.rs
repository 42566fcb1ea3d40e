//! NAT 1:1 (a cloud VM's elastic IP, a container's published port): the
//! slave's host candidates are announced with its public addresses in place
//! of the bound ones, so browsers send their checks where the NAT forwards.
//! (webrtc-rs 0.21.1 stores `with_nat_1to1_ips` but never reads it.)

use std::net::IpAddr;

/// The candidates to announce for one local candidate (`candidate:…`, with
/// or without the SDP's `a=` prefix): one per public address of the same
/// family for a host candidate, or the candidate itself when none applies.
pub(crate) fn announced(candidate: &str, public: &[IpAddr]) -> Vec<String> {
    let fields: Vec<&str> = candidate.split(' ').collect();
    let is_host = fields.windows(2).any(|w| w == ["typ", "host"]);
    let bound = fields.get(4).and_then(|a| a.parse::<IpAddr>().ok());
    let Some(bound) = bound.filter(|_| is_host) else { return vec![candidate.to_owned()] };
    let mapped: Vec<String> = public
        .iter()
        .filter(|p| p.is_ipv4() == bound.is_ipv4())
        .map(|p| {
            let mut out = fields.clone();
            let address = p.to_string();
            out[4] = &address;
            out.join(" ")
        })
        .collect();
    if mapped.is_empty() {
        vec![candidate.to_owned()]
    } else {
        mapped
    }
}

/// `sdp` with every host candidate line announced as [`announced`] says.
pub(crate) fn announced_sdp(sdp: &str, public: &[IpAddr]) -> String {
    if public.is_empty() {
        return sdp.to_owned();
    }
    let mut out = String::with_capacity(sdp.len() + 64);
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        if body.starts_with("a=candidate:") {
            for mapped in announced(body, public) {
                out.push_str(&mapped);
                out.push_str(ending);
            }
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST4: &str = "candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host";
    const HOST6: &str = "candidate:2 1 udp 2130706431 fd00::5 40001 typ host";
    const SRFLX: &str = "candidate:3 1 udp 1694498815 198.51.100.1 40000 typ srflx raddr 10.0.0.5 rport 40000";

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn host_candidates_take_the_public_address_of_their_family() {
        let public = ips(&["203.0.113.7", "2001:db8::7"]);
        assert_eq!(announced(HOST4, &public), ["candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host"]);
        assert_eq!(announced(HOST6, &public), ["candidate:2 1 udp 2130706431 2001:db8::7 40001 typ host"]);
    }

    #[test]
    fn other_candidates_and_other_families_are_left_alone() {
        let v4_only = ips(&["203.0.113.7"]);
        assert_eq!(announced(SRFLX, &v4_only), [SRFLX]);
        assert_eq!(announced(HOST6, &v4_only), [HOST6]);
        assert_eq!(announced("garbage", &v4_only), ["garbage"]);
        assert_eq!(announced(HOST4, &[]), [HOST4]);
    }

    #[test]
    fn every_public_address_of_the_family_is_announced() {
        let both = ips(&["203.0.113.7", "203.0.113.8"]);
        assert_eq!(announced(HOST4, &both).len(), 2);
    }

    #[test]
    fn sdp_lines_are_rewritten_in_place() {
        let sdp = format!("v=0\r\na={HOST4}\r\na={SRFLX}\r\na=end-of-candidates\r\n");
        let out = announced_sdp(&sdp, &ips(&["203.0.113.7"]));
        assert_eq!(
            out,
            format!("v=0\r\na=candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host\r\na={SRFLX}\r\na=end-of-candidates\r\n")
        );
    }
}
