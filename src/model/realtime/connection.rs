//! Dials a model WebSocket (Realtime: `?model=` in the URL; GPT-Live: none, the model goes in
//! `session.start`): bearer auth, no beta header, a connect timeout and one retry for
//! connection-class failures (reliability #1). Classified errors say whether to retry.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type ModelSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why the model could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("model connect timed out after {0:?}")]
    Timeout(Duration),
    #[error("model refused the handshake with HTTP {0}")]
    Refused(u16),
    #[error("model unreachable: {0}")]
    Network(String),
    #[error("bad model URL: {0}")]
    BadUrl(String),
}

impl ConnectError {
    /// Connection-class failures and 5xx may work on a second try; 4xx (bad key, bad model) not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ConnectError::Timeout(_) | ConnectError::Network(_) => true,
            ConnectError::Refused(status) => *status >= 500 || *status == 429,
            ConnectError::BadUrl(_) => false,
        }
    }
}

/// Where and how to reach the model.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub api: crate::model::ModelApi,
    /// `wss://api.openai.com/v1/realtime`, `…/v1/live/sessions` or a mock's `ws://…`.
    pub url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    /// Extra attempts after the first, for retryable failures.
    pub retries: u32,
    /// An open socket that says nothing this long (pinged at least every third of it) counts as lost.
    pub idle_timeout: Duration,
}

impl Endpoint {
    fn request_url(&self) -> String {
        if self.api == crate::model::ModelApi::Live {
            return self.url.clone();
        }
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}model={}", self.url, self.model)
    }
}

/// Opens the model socket, retrying retryable failures `endpoint.retries` times.
pub async fn connect(endpoint: &Endpoint) -> Result<ModelSocket, ConnectError> {
    let mut attempt = 0;
    loop {
        match connect_once(endpoint).await {
            Ok(ws) => return Ok(ws),
            Err(e) if e.is_retryable() && attempt < endpoint.retries => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "model connect failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 + rand::random_range(0..150))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn connect_once(endpoint: &Endpoint) -> Result<ModelSocket, ConnectError> {
    let mut request = endpoint.request_url().into_client_request().map_err(|e| ConnectError::BadUrl(e.to_string()))?;
    if let Some(key) = &endpoint.api_key {
        let value = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| ConnectError::BadUrl("API key is not a valid header value".into()))?;
        request.headers_mut().insert("Authorization", value);
    }
    // A small read buffer: tungstenite zero-fills it on every read (deltas are a few KiB; 4 KiB
    // reads kept a few KiB less per call in pcm16 but cost ~15 % more server CPU, issue 11).
    // Appends are written as they are fed (one per 20 ms anyway) instead of gathering in a
    // write buffer that then stays as large as the largest backlog.
    let config = WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let fut = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(endpoint.connect_timeout, fut).await {
        Err(_) => Err(ConnectError::Timeout(endpoint.connect_timeout)),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            Err(ConnectError::Refused(resp.status().as_u16()))
        }
        Ok(Err(e)) => Err(ConnectError::Network(e.to_string())),
    }
}
