//! serde helpers shared by the wire modules (carriers and the model): optional strings that
//! stay borrowed from the received frame when they contain no JSON escapes, and counters that
//! carriers send as strings or numbers — neither allocates per frame.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

/// `Option<Cow<str>>` that borrows (serde's own impl always copies inside an `Option`).
pub fn opt_cow<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowing<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowing<'a>>::deserialize(d)?.map(|b| b.0))
}

/// Accepts `"12"`, `12`, or absent.
pub fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(LenientU64).map(Some)
}

pub fn lenient_u64_req<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(LenientU64)
}

struct LenientU64;

impl<'de> serde::de::Visitor<'de> for LenientU64 {
    type Value = u64;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an unsigned integer or a string holding one")
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(E::custom)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
        if v >= 0.0 && v.fract() == 0.0 { Ok(v as u64) } else { Err(E::custom("not a whole number")) }
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
        v.trim().parse().map_err(E::custom)
    }
}
