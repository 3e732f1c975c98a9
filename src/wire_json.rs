//! serde helpers shared by the wire modules (carriers and the model): optional strings that
//! stay borrowed from the received frame when they contain no JSON escapes.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

/// `Option<Cow<str>>` that borrows (serde's own impl always copies inside an `Option`).
pub fn opt_cow<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowing<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowing<'a>>::deserialize(d)?.map(|b| b.0))
}
