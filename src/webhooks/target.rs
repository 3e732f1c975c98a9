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
        IpAddr::V6(v6) => match embedded_v4(v6) {
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
        || (o[0] == 198 && (o[1] & 0xFE) == 18) // 198.18.0.0/15 benchmarking (often lab-internal)
        || o[0] >= 240 // 240.0.0.0/4 reserved
}

/// The IPv4 address an IPv6 address reaches through: IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d` (deprecated, still routed by some stacks), NAT64 `64:ff9b::/96`
/// (RFC 6052) and its local-use `64:ff9b:1::/48` (RFC 8215, last 32 bits), and 6to4 `2002::/16`
/// (RFC 3056, bits 16–47). Each is judged by the IPv4 address it leads to.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => Some(v4(hi, lo)),
        // IPv4-translated `::ffff:0:a.b.c.d` (RFC 2765, SIIT).
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(v4(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Some(v4(s[6], s[7])),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    (s[0], s[1]) == (0x2001, 0) // 2001::/32 Teredo: the IPv4 behind it is hidden
        || ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xFE00) == 0xFC00 // fc00::/7 unique local (Fly 6PN: fdaa::/16)
        || (s[0] & 0xFFC0) == 0xFE80 // fe80::/10 link local
        || (s[0] & 0xFFC0) == 0xFEC0 // fec0::/10 site local (deprecated, still routed inside sites)
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
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::c0a8:101",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::ffff:0:10.0.0.1",
            "::ffff:0:127.0.0.1",
            "198.18.0.1",
            "198.19.255.254",
            "240.0.0.1",
            "254.1.2.3",
            "fec0::1",
            "feff::1",
        ] {
            assert!(check_ip(ip.parse().unwrap()).is_err(), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "203.0.113.7",
            "2606:4700::1111",
            "172.32.0.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::8.8.8.8",
            "::ffff:0:8.8.8.8",
            "198.20.0.1",
            "223.255.255.1",
        ] {
            assert!(check_ip(ip.parse().unwrap()).is_ok(), "{ip}");
        }
        assert!(check_name("api.example.com").is_ok());
        for name in ["localhost", "my-app.internal", "db.flycast", "x.localhost."] {
            assert!(check_name(name).is_err(), "{name}");
        }
    }
}
