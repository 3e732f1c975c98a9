//! One-time, short-lived tokens bound to a call id, which a media stream must present (Twilio in
//! `start`, Telnyx in its URL). A token carries its expiry and an HMAC under a key every instance
//! shares (kept in the database), so whichever instance a media socket lands on can check it;
//! "once" is kept by the store (`Bridge::redeem_token`) and, in this process, here.
//!
//! Format: 64 hex digits = expiry (Unix ms, 8 bytes) ‖ nonce (8 bytes) ‖ HMAC-SHA256 truncated
//! to 16 bytes over `call id ‖ expiry ‖ nonce`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::lifecycle::Millis;

/// How long a token minted for TwiML stays valid (Twilio connects within seconds).
pub const TOKEN_TTL: Duration = Duration::from_secs(120);

/// A valid token's identity, decoded (the MAC follows from it): what "used once" is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenId {
    expires: u64,
    nonce: u64,
}

impl TokenId {
    /// The store's key for it (`first_sighting`): its decoded bytes, one spelling only.
    pub fn key(&self) -> String {
        format!("{:016x}{:016x}", self.expires, self.nonce)
    }
}

/// Mints and checks stream tokens under one key.
#[derive(Debug)]
pub struct StreamTokens {
    key: [u8; 32],
    /// Tokens used in this process, until they expire.
    used: Mutex<HashMap<TokenId, Millis>>,
}

impl Default for StreamTokens {
    /// A random key: tokens good for this process only (no shared store).
    fn default() -> StreamTokens {
        StreamTokens::new(rand::random())
    }
}

impl StreamTokens {
    pub fn new(key: [u8; 32]) -> StreamTokens {
        StreamTokens { key, used: Mutex::default() }
    }

    /// A fresh token for `call_id`, valid for [`TOKEN_TTL`] from `now`.
    pub fn mint(&self, call_id: &str, now: Millis) -> String {
        self.mint_for(call_id, now, TOKEN_TTL)
    }

    /// A fresh token for `call_id`, valid for `ttl` from `now`.
    pub fn mint_for(&self, call_id: &str, now: Millis, ttl: Duration) -> String {
        let expires = (now + ttl.as_millis() as Millis) as u64;
        let nonce: u64 = rand::random();
        format!("{expires:016x}{nonce:016x}{}", hex(&self.mac(call_id, expires, nonce)))
    }

    /// Whether `token` was minted (by any instance with this key) for `call_id` and is still
    /// valid at `now`. Says nothing about earlier use.
    pub fn verify(&self, token: &str, call_id: &str, now: Millis) -> bool {
        self.check(token, call_id, now).is_some()
    }

    /// [`verify`](Self::verify), giving the token's identity: its expiry and nonce as decoded
    /// bytes, the key under which "used" is kept (here and in the store). Only the canonical
    /// spelling is accepted (64 lower-case hex digits, as minted): a token re-spelt with
    /// upper-case digits or a sign is another text but must not be another token.
    pub fn check(&self, token: &str, call_id: &str, now: Millis) -> Option<TokenId> {
        let bytes = token.as_bytes();
        if bytes.len() != 64 || !bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let field = |r: std::ops::Range<usize>| u64::from_str_radix(&token[r], 16).ok();
        let (expires, nonce) = (field(0..16)?, field(16..32)?);
        let expected = hex(&self.mac(call_id, expires, nonce));
        (constant_time_eq(expected.as_bytes(), &bytes[32..]) && (expires as Millis) > now)
            .then_some(TokenId { expires, nonce })
    }

    /// Whether `id` was used in this process (and has not expired since).
    pub fn is_used(&self, id: TokenId, now: Millis) -> bool {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.get(&id).is_some_and(|expires| *expires > now)
    }

    /// [`check`](Self::check), and not used before in this process; uses it up here.
    pub fn consume(&self, token: &str, call_id: &str, now: Millis) -> Option<TokenId> {
        let id = self.check(token, call_id, now)?;
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.retain(|_, expires| *expires > now);
        used.insert(id, id.expires as Millis).is_none().then_some(id)
    }

    fn mac(&self, call_id: &str, expires: u64, nonce: u64) -> [u8; 16] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(b"voxbridge stream token\0");
        mac.update(call_id.as_bytes());
        mac.update(b"\0");
        mac.update(&expires.to_be_bytes());
        mac.update(&nonce.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_work_once_for_their_call_and_expire() {
        let t = StreamTokens::default();
        let now = 1_000_000;
        let tok = t.mint("c1", now);
        assert!(t.consume(&tok, "c2", now).is_none(), "bound to its call");
        let tok = t.mint("c1", now);
        assert!(t.consume(&tok, "c1", now).is_some());
        assert!(t.consume(&tok, "c1", now).is_none(), "single use");
        let tok = t.mint("c1", now);
        assert!(t.consume(&tok, "c1", now + TOKEN_TTL.as_millis() as Millis + 1).is_none(), "expired");
    }

    #[test]
    fn a_token_re_spelt_is_refused_and_its_identity_is_its_decoded_bytes() {
        let t = StreamTokens::default();
        let tok = t.mint("c1", 0);
        let upper = tok.to_ascii_uppercase();
        // `from_str_radix` alone would take each of these as the same expiry and nonce.
        let plus = format!("+{}", &tok[1..]);
        let plus_nonce = format!("{}+{}", &tok[..16], &tok[17..]);
        for respelt in [&upper, &plus, &plus_nonce] {
            assert!(t.check(respelt, "c1", 1).is_none(), "{respelt}");
        }
        let id = t.consume(&tok, "c1", 1).expect("the canonical spelling works");
        assert_eq!(id.key(), tok[..32], "keyed by expiry and nonce as minted");
        for respelt in [&upper, &plus] {
            assert!(t.consume(respelt, "c1", 1).is_none(), "used, whatever the spelling");
        }
    }

    #[test]
    fn another_instance_with_the_key_accepts_a_token_and_a_stranger_cannot_forge_one() {
        let key = [7u8; 32];
        let (a, b) = (StreamTokens::new(key), StreamTokens::new(key));
        let tok = a.mint("c1", 0);
        assert!(b.verify(&tok, "c1", 1), "minted on one instance, checked on another");
        assert!(!StreamTokens::new([8u8; 32]).verify(&tok, "c1", 1), "another key");
        // A later expiry written into the token breaks its MAC.
        let mut forged = tok.clone();
        forged.replace_range(0..16, &format!("{:016x}", u64::MAX >> 1));
        assert!(!b.verify(&forged, "c1", 1));
        for junk in ["", "zz", &"0".repeat(64), &format!("{}é", &tok[..62])] {
            assert!(!b.verify(junk, "c1", 1), "{junk:?}");
        }
    }
}
