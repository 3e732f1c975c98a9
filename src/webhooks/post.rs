//! One JSON POST to a URL a user gave (an event, a tool call): the target resolved once and
//! refused if private (unless allowed), the connection made to the address that was checked (no
//! second lookup, no redirects), the body signed when a secret is set.

use std::net::SocketAddr;
use std::time::Duration;

use super::{signing, target};
use crate::store::now_ms;

/// How a user's URL may be reached.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Signs every body when set (`Voxbridge-Signature`).
    pub secret: Option<String>,
    /// Loopback and private addresses too (local development, tests).
    pub allow_private: bool,
    /// The whole request, connect to last byte.
    pub timeout: Duration,
}

/// Why a POST did not get a 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The target is not allowed: trying again will not help.
    Refused(String),
    /// Network error, timeout or a non-2xx answer.
    Failed(String),
}

/// POSTs `body` (JSON) to `url`; the answer when it is a 2xx.
pub async fn post_json(url: &str, body: String, guard: &Guard) -> Result<reqwest::Response, Failure> {
    let url = url::Url::parse(url).map_err(|_| Failure::Refused(target::Refused::BadUrl.to_string()))?;
    let (Some(host), true) = (url.host_str(), matches!(url.scheme(), "http" | "https")) else {
        return Err(Failure::Refused(target::Refused::BadUrl.to_string()));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    if !guard.allow_private {
        target::check_name(&host).map_err(|e| Failure::Refused(e.to_string()))?;
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| Failure::Failed(format!("cannot resolve {host}: {e}")))?
        .collect();
    let Some(&addr) = addrs.first() else { return Err(Failure::Failed(format!("{host} has no address"))) };
    if !guard.allow_private {
        for a in &addrs {
            target::check_ip(a.ip()).map_err(|e| Failure::Refused(e.to_string()))?;
        }
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(guard.timeout)
        .resolve(&host, addr)
        .build()
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let mut req = client.post(url.as_str()).header("content-type", "application/json");
    if let Some(secret) = &guard.secret {
        req = req.header(signing::HEADER, signing::sign(secret, now_ms() / 1000, body.as_bytes()));
    }
    let resp = req.body(body).send().await.map_err(|e| Failure::Failed(e.to_string()))?;
    if resp.status().is_success() { Ok(resp) } else { Err(Failure::Failed(format!("answered {}", resp.status()))) }
}
