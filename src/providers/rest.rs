//! What every carrier's REST client shares: one error type that says whether a retry can help
//! (4xx final with the provider's message kept; 5xx, 429 and network errors retryable).

/// Why a carrier REST request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    #[error("{provider} rejected the request ({status}): {message}")]
    Rejected { provider: &'static str, status: u16, message: String },
    #[error("{provider} is unavailable ({status}): {message}")]
    Unavailable { provider: &'static str, status: u16, message: String },
    #[error("could not reach {provider}: {message}")]
    Network { provider: &'static str, message: String },
    /// Never sent: the id is not of the carrier's shape (it would not stay one path segment).
    #[error("{provider} call id {id:?} is not a carrier call id; nothing was sent")]
    BadCallId { provider: &'static str, id: String },
}

impl RestError {
    /// 5xx, 429 and network errors may succeed later; other 4xx will not.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, RestError::Rejected { .. } | RestError::BadCallId { .. })
    }

    /// Classifies an error answer by its HTTP status.
    pub fn from_status(provider: &'static str, status: u16, message: String) -> RestError {
        if status == 429 || status >= 500 {
            RestError::Unavailable { provider, status, message }
        } else {
            RestError::Rejected { provider, status, message }
        }
    }

    /// The HTTP status of an error answer (none for network errors).
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::Rejected { status, .. } | RestError::Unavailable { status, .. } => Some(*status),
            RestError::Network { .. } | RestError::BadCallId { .. } => None,
        }
    }
}

/// Whether `id` can be a carrier's call id (Twilio `CA…`, Telnyx `v3:…` or a UUID): 1 to 128
/// of `A–Z a–z 0–9 _ - :`. Anything else never goes into a REST path: no dot (`..` would climb
/// the path even percent-encoded, WHATWG URL treats `%2e%2e` as `..`), no slash, no query.
pub fn is_call_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
}

/// `id` as one path segment of a REST URL: checked by [`is_call_id`], then percent-encoded
/// (`:` and anything not alphanumeric, `-` or `_`).
pub fn call_id_segment(provider: &'static str, id: &str) -> Result<String, RestError> {
    if !is_call_id(id) {
        return Err(RestError::BadCallId { provider, id: id.chars().take(64).collect() });
    }
    Ok(path_segment(id))
}

/// Percent-encodes every byte of `text` but `A–Z a–z 0–9 - _` (for a path segment).
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An HTTP client with the timeouts every carrier call uses (a hung provider never holds a
/// worker or a call task for more than 10 s).
pub fn http_client() -> reqwest::Client {
    crate::install_tls();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .connect_timeout(std::time::Duration::from_secs(3))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Sends `request`; the status and body text of a 2xx answer, or `(status, body)` of an error
/// answer for the carrier to classify.
pub async fn send(
    provider: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<Result<(u16, String), (u16, String)>, RestError> {
    let resp = request.send().await.map_err(|e| RestError::Network { provider, message: e.to_string() })?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    Ok(if (200..300).contains(&status) { Ok((status, body)) } else { Err((status, body)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_carrier_shaped_ids_become_a_path_segment() {
        for ok in ["CA0123456789abcdef0123456789abcdef", "v3:AbC-_09xyz", "4f2d3c1a-0000-4000-8000-000000000000"] {
            assert!(is_call_id(ok), "{ok}");
        }
        assert_eq!(call_id_segment("T", "v3:a-b_c").unwrap(), "v3%3Aa-b_c");
        let attacks = [
            "../../../../Accounts/AC1/IncomingPhoneNumbers/PN1",
            "..",
            ".",
            "CA1/..",
            "CA1?x=1",
            "CA1#",
            "",
            "CA 1",
            "CA%2e%2e",
            &"A".repeat(129),
        ];
        for bad in attacks {
            assert!(matches!(call_id_segment("T", bad), Err(RestError::BadCallId { .. })), "{bad}");
        }
        assert!(!RestError::BadCallId { provider: "T", id: "..".into() }.is_retryable());
        assert_eq!(path_segment("AC1/../x"), "AC1%2F%2E%2E%2Fx");
    }
}
