//! Who is on the other end of a request, as far as trust goes: a peer on this host counts as
//! local only when no proxy stands between — a tunnel (cloudflared, ngrok) or a reverse proxy on
//! the same host connects from loopback on a stranger's behalf, and says so in a forwarding
//! header. A pure decision over the peer address and the headers.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// Headers a proxy or tunnel adds for the client it forwards (standard, de facto, Cloudflare's,
/// Fly's, Railway's and Akamai's / Azure's): any of them means the request came from elsewhere.
pub const FORWARDING_HEADERS: [&str; 8] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-real-ip",
    "cf-connecting-ip",
    "fly-client-ip",
    "true-client-ip",
    "x-client-ip",
];

/// The peer is on this host (loopback, IPv4-mapped loopback included) and nothing forwarded
/// the request to it.
pub fn is_local(peer: IpAddr, headers: &HeaderMap) -> bool {
    is_loopback(peer) && forwarded_by(headers).is_none()
}

/// The first forwarding header the request carries, if any.
pub fn forwarded_by(headers: &HeaderMap) -> Option<&'static str> {
    FORWARDING_HEADERS.into_iter().find(|h| headers.contains_key(*h))
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_local_until_a_proxy_says_it_forwarded_the_request() {
        let none = HeaderMap::new();
        for local in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(is_local(local.parse().unwrap(), &none), "{local}");
        }
        for remote in ["203.0.113.7", "10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1"] {
            assert!(!is_local(remote.parse().unwrap(), &none), "{remote}");
        }
        for header in FORWARDING_HEADERS {
            let mut h = HeaderMap::new();
            h.insert(header, "203.0.113.7".parse().unwrap());
            assert!(!is_local("127.0.0.1".parse().unwrap(), &h), "{header}");
            assert_eq!(forwarded_by(&h), Some(header));
        }
    }
}
