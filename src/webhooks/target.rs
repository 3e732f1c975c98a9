//! Which webhook targets may be called: no loopback, private, link-local, carrier-grade NAT,
//! unique-local (Fly's 6PN `fdaa:`), multicast or unspecified addresses, and no `.internal` /
//! `.flycast` names — unless the operator allows private targets (reliability.md §3.5). Pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0} is not a public address")]
    Private(IpAddr),
    #[error("{0} is an internal name")]
    InternalName(String),
    #[error("not an http(s) URL with a host")]
    BadUrl,
}

/// A name that must never be resolved for a user-supplied URL.
pub fn check_name(host: &str) -> Result<(), Refused> {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if h == "localhost" || h.ends_with(".localhost") || h.ends_with(".internal") || h.ends_with(".flycast") {
        Err(Refused::InternalName(host.to_string()))
    } else {
        Ok(())
    }
}

/// An address a webhook may be delivered to.
pub fn check_ip(ip: IpAddr) -> Result<(), Refused> {
    let private = match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => private_v4(v4),
            None => private_v6(v6),
        },
    };
    if private { Err(Refused::Private(ip)) } else { Ok(()) }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xC0) == 64) // 100.64.0.0/10 carrier-grade NAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 protocol assignments
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xFE00) == 0xFC00 // fc00::/7 unique local (Fly 6PN: fdaa::/16)
        || (s[0] & 0xFFC0) == 0xFE80 // fe80::/10 link local
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_internal_targets_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fdaa::3",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(check_ip(ip.parse().unwrap()).is_err(), "{ip}");
        }
        for ip in ["8.8.8.8", "203.0.113.7", "2606:4700::1111", "172.32.0.1"] {
            assert!(check_ip(ip.parse().unwrap()).is_ok(), "{ip}");
        }
        assert!(check_name("api.example.com").is_ok());
        for name in ["localhost", "my-app.internal", "db.flycast", "x.localhost."] {
            assert!(check_name(name).is_err(), "{name}");
        }
    }
}
