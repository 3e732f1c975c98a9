//! Telnyx webhook signatures: Ed25519 over `"<telnyx-timestamp>|<raw body>"` with the account's
//! public key, timestamps within 300 s either way (protocols.md §3.6). Pure; the raw bytes only —
//! a re-serialized body does not verify.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};

/// Largest accepted clock difference, both directions (Telnyx's SDKs use 300 s).
pub const TOLERANCE_S: i64 = 300;

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing telnyx-signature-ed25519 or telnyx-timestamp")]
    Missing,
    #[error("telnyx-timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("telnyx-timestamp is {0} s from now (more than 300)")]
    Stale(i64),
    #[error("signature is not 64 bytes of base64")]
    BadSignature,
    #[error("signature does not match")]
    Mismatch,
}

/// A Telnyx public key (32 bytes, base64 in the portal).
#[derive(Debug, Clone)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses the portal's base64 key; `None` unless it is a valid 32-byte Ed25519 key.
    pub fn from_base64(s: &str) -> Option<PublicKey> {
        let bytes: [u8; 32] = B64.decode(s.trim()).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok().map(PublicKey)
    }

    /// Checks a webhook: headers as received, the raw body, the current Unix time. On success,
    /// how many seconds our clock is ahead of the sender's timestamp (to watch the clocks' skew).
    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<i64, SignatureError> {
        let (Some(sig), Some(ts)) = (signature, timestamp) else { return Err(SignatureError::Missing) };
        if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignatureError::BadTimestamp);
        }
        let t: i64 = ts.parse().map_err(|_| SignatureError::BadTimestamp)?;
        if (now - t).abs() > TOLERANCE_S {
            return Err(SignatureError::Stale(now - t));
        }
        let bytes: [u8; 64] =
            B64.decode(sig.trim()).ok().and_then(|b| b.try_into().ok()).ok_or(SignatureError::BadSignature)?;
        let mut message = Vec::with_capacity(ts.len() + 1 + body.len());
        message.extend_from_slice(ts.as_bytes());
        message.push(b'|');
        message.extend_from_slice(body);
        self.0.verify_strict(&message, &Signature::from_bytes(&bytes)).map_err(|_| SignatureError::Mismatch)?;
        Ok(now - t)
    }
}

/// Signs a webhook as Telnyx does: base64 Ed25519 over `"<timestamp>|<body>"` with a 32-byte
/// secret key (for replay's fake Telnyx and for tests; the server only verifies).
pub fn sign(secret: &[u8; 32], timestamp: &str, body: &[u8]) -> String {
    use ed25519_dalek::Signer;
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'|');
    message.extend_from_slice(body);
    B64.encode(ed25519_dalek::SigningKey::from_bytes(secret).sign(&message).to_bytes())
}

/// The base64 public key of a 32-byte secret key (what the portal shows).
pub fn public_key_base64(secret: &[u8; 32]) -> String {
    B64.encode(ed25519_dalek::SigningKey::from_bytes(secret).verifying_key().to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 test 1 secret key (a real Ed25519 key pair; not a Telnyx key).
    const SECRET: [u8; 32] = [
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49,
        0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
    ];
    const PUBLIC_B64: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    const BODY: &str = r#"{"data":{"event_type":"call.hangup","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2023-11-14T22:13:20.000000Z","payload":{"call_control_id":"v3:abc","hangup_cause":"normal_clearing"},"record_type":"event"}}"#;
    const SIG: &str = "s8X4byGdUe3V1YowgR2fQXMoXPnfQuWNi+M5mWz8slqLanoA8xikw1QFTtS2ED0Ohkk0O2ONlZudhVrZa72GBg==";

    fn sign(ts: &str, body: &str) -> String {
        super::sign(&SECRET, ts, body.as_bytes())
    }

    #[test]
    fn the_protocols_vector_verifies() {
        assert_eq!(public_key_base64(&SECRET), PUBLIC_B64);
        let key = PublicKey::from_base64(PUBLIC_B64).unwrap();
        assert_eq!(key.verify(Some(SIG), Some("1700000000"), BODY.as_bytes(), 1_700_000_000), Ok(0));
        assert_eq!(sign("1700000000", BODY), SIG, "our signer reproduces the vector");
    }

    #[test]
    fn the_window_is_300_seconds_both_ways() {
        let key = PublicKey::from_base64(PUBLIC_B64).unwrap();
        let t = 1_700_000_000;
        for (offset, ok) in [(299, true), (-299, true), (301, false), (-301, false)] {
            let result = key.verify(Some(SIG), Some("1700000000"), BODY.as_bytes(), t + offset);
            assert_eq!(result, if ok { Ok(offset) } else { Err(SignatureError::Stale(offset)) });
        }
    }

    #[test]
    fn tampering_and_reserialization_fail() {
        let key = PublicKey::from_base64(PUBLIC_B64).unwrap();
        let t = 1_700_000_000;
        let mut flipped = BODY.as_bytes().to_vec();
        flipped[10] ^= 1;
        assert_eq!(key.verify(Some(SIG), Some("1700000000"), &flipped, t), Err(SignatureError::Mismatch));
        // The same JSON, re-serialized (keys reordered / spaced), is not the signed body.
        let reserialized =
            serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(BODY).unwrap()).unwrap();
        assert_eq!(
            key.verify(Some(SIG), Some("1700000000"), reserialized.as_bytes(), t),
            Err(SignatureError::Mismatch)
        );
        let mut sig = B64.decode(SIG).unwrap();
        sig[0] ^= 0x80;
        assert_eq!(
            key.verify(Some(&B64.encode(sig)), Some("1700000000"), BODY.as_bytes(), t),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(key.verify(None, Some("1700000000"), BODY.as_bytes(), t), Err(SignatureError::Missing));
        assert_eq!(key.verify(Some(SIG), Some("17e8"), BODY.as_bytes(), t), Err(SignatureError::BadTimestamp));
        assert_eq!(
            key.verify(Some("c2hvcnQ="), Some("1700000000"), BODY.as_bytes(), t),
            Err(SignatureError::BadSignature)
        );
        assert!(PublicKey::from_base64("c2hvcnQ=").is_none());
    }

    #[test]
    fn a_fresh_signature_over_another_body_verifies() {
        let key = PublicKey::from_base64(PUBLIC_B64).unwrap();
        let body = r#"{"data":{"event_type":"call.answered","id":"x"}}"#;
        assert!(
            key.verify(Some(&sign("1800000000", body)), Some("1800000000"), body.as_bytes(), 1_800_000_010).is_ok()
        );
    }
}
