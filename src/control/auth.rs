//! Who may call `/v1/*`: a bearer key from `VOXBRIDGE_API_KEYS` (compared in constant time),
//! or — with no keys configured — only a caller on this host while the public URL is local too
//! (`control::peer`: nothing forwarded it), and never a browser: a page open on the same host
//! could otherwise place calls (requests with an `Origin` are refused, and a body must be
//! `application/json`, which no cross-site form or simple request can send). With a public URL
//! that is not local and no keys, `/v1` refuses everyone: a tunnel or proxy on the same host
//! connects from loopback for strangers. The decisions are pure functions.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// Where a request without keys configured may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A peer on this host that nothing forwarded (`peer::is_local`).
    Local,
    /// Anyone else, a forwarded request on loopback included.
    Elsewhere,
}

/// Decides one request. `keys` empty means "no keys configured"; `public_url_is_local` says
/// whether the server is reachable only from this host (else a tunnel may be in front of it).
pub fn authorize(
    keys: &[String],
    authorization: Option<&str>,
    from: Origin,
    public_url_is_local: bool,
) -> Result<(), ApiError> {
    if keys.is_empty() {
        return match (public_url_is_local, from) {
            (true, Origin::Local) => Ok(()),
            (true, Origin::Elsewhere) => Err(ApiError::forbidden_api(
                "no API keys are configured: only this host may use the API (a forwarded request is not this host)",
            )),
            (false, _) => Err(ApiError::forbidden_api(
                "VOXBRIDGE_API_KEYS is not set and VOXBRIDGE_PUBLIC_URL is not local: the API refuses every request \
                 (a tunnel or proxy would let anyone in); set VOXBRIDGE_API_KEYS",
            )),
        };
    }
    let Some(given) = authorization.and_then(bearer) else {
        return Err(ApiError::unauthorized("missing bearer API key"));
    };
    // Compare against every key without stopping early, each in constant time.
    let mut ok = false;
    for key in keys {
        ok |= constant_time_eq(key.as_bytes(), given.as_bytes());
    }
    if ok { Ok(()) } else { Err(ApiError::unauthorized("unknown API key")) }
}

/// The credentials of an `Authorization: Bearer …` header; the scheme is case-insensitive
/// (RFC 9110 §11.1).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim()).filter(|c| !c.is_empty())
}

/// Without keys, loopback is trusted only for requests no browser page can make: no `Origin`
/// header, and a body only as `application/json` (a cross-origin page may send `text/plain`
/// without asking; JSON needs a CORS preflight, which this server never grants).
pub fn not_from_a_browser(origin: Option<&str>, content_type: Option<&str>, has_body: bool) -> Result<(), ApiError> {
    if origin.is_some() {
        return Err(ApiError::forbidden_api(
            "requests from a browser page (with an Origin header) are refused when no API keys are configured",
        ));
    }
    let json = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if has_body && !json {
        return Err(ApiError::unsupported_media_type("a request body must be sent as Content-Type: application/json"));
    }
    Ok(())
}

/// Requests per second per caller (API key, or peer address without keys), bursts of twice
/// that: governor's GCRA, keyed.
pub struct RateLimit {
    limiter: governor::DefaultKeyedRateLimiter<String>,
}

impl RateLimit {
    pub fn new(per_second: std::num::NonZeroU32) -> RateLimit {
        let burst = std::num::NonZeroU32::new(per_second.get().saturating_mul(2)).unwrap_or(per_second);
        let quota = governor::Quota::per_second(per_second).allow_burst(burst);
        RateLimit { limiter: governor::RateLimiter::keyed(quota) }
    }

    /// `Ok` if `caller` may make a request now, else how long until it may.
    pub fn check(&self, caller: &str) -> Result<(), std::time::Duration> {
        use governor::clock::Clock;
        let caller = caller.to_string();
        let verdict =
            self.limiter.check_key(&caller).map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()));
        // Forget callers idle long enough to be back at a full burst (bounded memory).
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        verdict
    }
}

/// The keys from `VOXBRIDGE_API_KEYS` (comma-separated, blanks ignored).
pub fn parse_keys(raw: Option<&str>) -> Vec<String> {
    raw.unwrap_or_default().split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Middleware for the `/v1` routes.
pub async fn require_api_key(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let text = |name| headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
    let from = if super::peer::is_local(peer.ip(), headers) { Origin::Local } else { Origin::Elsewhere };
    let mut decision =
        authorize(&state.api_keys, text(header::AUTHORIZATION), from, state.config.public_url_is_local());
    if decision.is_ok() && state.api_keys.is_empty() {
        let has_body = headers.contains_key(header::TRANSFER_ENCODING)
            || text(header::CONTENT_LENGTH).is_some_and(|n| n.trim() != "0");
        decision = not_from_a_browser(text(header::ORIGIN), text(header::CONTENT_TYPE), has_body);
    }
    if let (Ok(()), Some(limit)) = (&decision, &state.rate_limit) {
        let caller = text(header::AUTHORIZATION).map_or_else(|| peer.ip().to_string(), str::to_string);
        if let Err(wait) = limit.check(&caller) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = ApiError::too_many_requests(format!("over VOXBRIDGE_API_RATE_LIMIT; retry in {secs} s"))
                .into_response();
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
    }
    match decision {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Origin = Origin::Local;
    const REMOTE: Origin = Origin::Elsewhere;

    #[test]
    fn without_keys_only_this_host_is_allowed_and_only_while_the_public_url_is_local() {
        assert!(authorize(&[], None, LOCAL, true).is_ok());
        assert_eq!(authorize(&[], Some("Bearer x"), REMOTE, true).unwrap_err().status, 403);
        // A public URL: a tunnel connects from loopback for anyone.
        assert_eq!(authorize(&[], None, LOCAL, false).unwrap_err().status, 403);
        assert_eq!(authorize(&[], None, REMOTE, false).unwrap_err().status, 403);
    }

    #[test]
    fn without_keys_no_browser_request_is_trusted() {
        assert!(not_from_a_browser(None, Some("application/json"), true).is_ok());
        assert!(not_from_a_browser(None, Some("Application/JSON; charset=utf-8"), true).is_ok());
        assert!(not_from_a_browser(None, None, false).is_ok(), "no body, no type needed");
        assert_eq!(not_from_a_browser(Some("http://evil.example"), None, false).unwrap_err().status, 403);
        assert_eq!(not_from_a_browser(Some("null"), Some("application/json"), true).unwrap_err().status, 403);
        for simple in [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data"), None]
        {
            assert_eq!(not_from_a_browser(None, simple, true).unwrap_err().status, 415, "{simple:?}");
        }
    }

    #[test]
    fn with_keys_a_matching_bearer_key_is_required_from_anywhere() {
        let keys = parse_keys(Some(" vb_live_a1 , ,vb_live_b2"));
        assert_eq!(keys, ["vb_live_a1", "vb_live_b2"]);
        for public in [true, false] {
            assert!(authorize(&keys, Some("Bearer vb_live_b2"), REMOTE, public).is_ok());
            for scheme in ["bearer", "BEARER", "BeArEr"] {
                assert!(authorize(&keys, Some(&format!("{scheme} vb_live_b2")), REMOTE, public).is_ok(), "{scheme}");
            }
            assert_eq!(authorize(&keys, None, LOCAL, public).unwrap_err().status, 401, "loopback needs the key too");
            assert_eq!(
                authorize(&keys, Some("Bearer vb_live_a"), REMOTE, public).unwrap_err().status,
                401,
                "a prefix is not the key"
            );
            assert_eq!(authorize(&keys, Some("Bearer vb_live_a1x"), REMOTE, public).unwrap_err().status, 401);
            assert_eq!(authorize(&keys, Some("Basic dmI6"), REMOTE, public).unwrap_err().status, 401);
            assert_eq!(authorize(&keys, Some("Bearer "), REMOTE, public).unwrap_err().status, 401);
        }
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"", b"a"));
    }
}
