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
}

impl RestError {
    /// 5xx, 429 and network errors may succeed later; other 4xx will not.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, RestError::Rejected { .. })
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
            RestError::Network { .. } => None,
        }
    }
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
