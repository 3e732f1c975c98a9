//! `X-Twilio-Signature`: HMAC-SHA1 keyed with the auth token over the URL Twilio called plus
//! the sorted form parameters, base64 (protocols.md §2.7). Pure; compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// The signature Twilio would send for `url` and form `params`.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    B64.encode(mac_for(auth_token, url, params).finalize().into_bytes())
}

/// True when `header` is Twilio's signature for the request, trying the URL port variants
/// Twilio's own validators accept (as given, without an explicit port, with the default port).
pub fn validate(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    let Ok(given) = B64.decode(header.trim()) else {
        return false;
    };
    url_variants(url).iter().any(|u| mac_for(auth_token, u, params).verify_slice(&given).is_ok())
}

fn mac_for(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    // HMAC accepts keys of any length.
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(url.as_bytes());
    let mut sorted: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    sorted.sort_unstable();
    sorted.dedup();
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// The URL as given, plus the same URL without its explicit port or with the scheme's default
/// port added. Works on the raw text: a URL parser would hide an explicit default port.
fn url_variants(raw: &str) -> Vec<String> {
    let mut out = vec![raw.to_string()];
    let Some(scheme_end) = raw.find("://") else {
        return out;
    };
    let scheme = &raw[..scheme_end];
    let rest = &raw[scheme_end + 3..];
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let tail = &rest[auth_len..];
    // The port is after the last ':' unless that ':' is inside an IPv6 literal.
    let port_sep = authority.rfind(':').filter(|&i| !authority[i..].contains(']'));
    match port_sep {
        Some(i) => out.push(format!("{scheme}://{}{tail}", &authority[..i])),
        None => {
            let default = match scheme {
                "https" | "wss" => 443,
                "http" | "ws" => 80,
                _ => return out,
            };
            out.push(format!("{scheme}://{authority}:{default}{tail}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Twilio's published test vectors (twilio-python tests, protocols.md §2.7).
    #[test]
    fn matches_twilio_test_vectors() {
        let p = params();
        assert_eq!(compute("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &p), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert_eq!(
            compute("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", &p),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        assert_eq!(
            compute("12345", "http://mycompany.com:80/myapp.php?foo=1&bar=2", &p),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        );
        assert_eq!(
            compute("12345", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", &p),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        );
        let repeated: Vec<(String, String)> =
            [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(
            compute("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &repeated),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
        assert_eq!(compute("12345", "wss://voice.example.com/media/twilio", &[]), "C6FHkKjYMuvoBVOntnfRi3NjKEA=");
    }

    #[test]
    fn validate_accepts_port_variants_and_rejects_tampering() {
        let p = params();
        let sig = compute("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", &p);
        assert!(validate("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &p, &sig));
        let sig = compute("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &p);
        assert!(validate("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", &p, &sig));
        assert!(!validate("12346", "https://mycompany.com/myapp.php?foo=1&bar=2", &p, &sig));
        let mut tampered = p.clone();
        tampered[1].1 = "9999".into();
        assert!(!validate("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &tampered, &sig));
        assert!(!validate("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &p, "not base64!"));
    }
}
