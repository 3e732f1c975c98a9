//! Carrier requests without a signature: served only where no stranger can reach them (a local
//! public URL) or where the operator said so (`VOXBRIDGE_ALLOW_UNSIGNED=true`); otherwise 403, so
//! that an unconfigured secret never lets anyone start a model session on the operator's key.

use std::net::IpAddr;

use axum::http::HeaderMap;

use super::error::ApiError;
use crate::config::{Config, Unsigned};
use crate::providers::carrier::Provider;
use crate::telemetry;

/// `Ok` when an unsigned request from `provider` (from `peer`) to `url` may be served: on
/// purpose (`Allowed`), or with a local public URL from this host only — the default listen
/// address is every interface, and a peer elsewhere (or forwarded by a proxy on this host)
/// would otherwise get a stream token and a model session. A refusal is logged once per source,
/// like the signature refusals, so a flood cannot flood the log; the routes' metrics count
/// every one.
pub fn allow(
    config: &Config,
    provider: Provider,
    peer: IpAddr,
    headers: &HeaderMap,
    url: &str,
) -> Result<(), ApiError> {
    match config.unsigned(provider) {
        Unsigned::Allowed => return Ok(()),
        Unsigned::LocalOnly if super::peer::is_local(peer, headers) => return Ok(()),
        Unsigned::LocalOnly => {
            if telemetry::first_from("unsigned_not_local", peer) {
                tracing::warn!(
                    provider = provider.as_str(),
                    url,
                    %peer,
                    forwarded_by = super::peer::forwarded_by(headers).unwrap_or(""),
                    "unsigned request from another host refused: VOXBRIDGE_PUBLIC_URL is local, so only this host \
                     may send unsigned carrier requests (set VOXBRIDGE_PUBLIC_URL and the carrier's secret); \
                     logged once per source"
                );
            }
            return Err(ApiError::unsigned_refused(
                "unsigned carrier requests are served to this host only while VOXBRIDGE_PUBLIC_URL is local",
            ));
        }
        Unsigned::Checked | Unsigned::Refused => {}
    }
    let (secret, kind) = match provider {
        Provider::Twilio => ("TWILIO_AUTH_TOKEN", "twilio_unsigned"),
        Provider::Telnyx => ("TELNYX_PUBLIC_KEY", "telnyx_unsigned"),
    };
    if telemetry::first_from(kind, peer) {
        tracing::warn!(
            provider = provider.as_str(),
            url,
            %peer,
            "unsigned {} request refused: {secret} is not set and VOXBRIDGE_PUBLIC_URL is not local \
             (set {secret}, or VOXBRIDGE_ALLOW_UNSIGNED=true for development); logged once per source",
            provider.as_str()
        );
    }
    Err(ApiError::unsigned_refused(format!(
        "{secret} is not configured, so unsigned {} requests are refused",
        provider.as_str()
    )))
}

/// What start-up says about unsigned carrier requests, once, loudly.
pub fn log_at_start_up(config: &Config) {
    for (provider, secret) in [(Provider::Twilio, "TWILIO_AUTH_TOKEN"), (Provider::Telnyx, "TELNYX_PUBLIC_KEY")] {
        match config.unsigned(provider) {
            Unsigned::Checked => {
                tracing::info!(provider = provider.as_str(), "{secret} set: every request must be signed")
            }
            Unsigned::LocalOnly => tracing::info!(
                provider = provider.as_str(),
                public_url = %config.public_url,
                "{secret} not set: unsigned requests accepted, since VOXBRIDGE_PUBLIC_URL is local"
            ),
            Unsigned::Allowed => tracing::warn!(
                provider = provider.as_str(),
                "VOXBRIDGE_ALLOW_UNSIGNED=true and {secret} not set: ANYONE who finds {} can start calls on your model key",
                config.public_url
            ),
            Unsigned::Refused => tracing::warn!(
                provider = provider.as_str(),
                "{secret} not set and VOXBRIDGE_PUBLIC_URL is not local: unsigned {} requests and streams are REFUSED \
                 (set {secret}, or VOXBRIDGE_ALLOW_UNSIGNED=true for development)",
                provider.as_str()
            ),
        }
    }
}

/// The line `/readyz` adds while unsigned requests are accepted on purpose.
pub fn readiness_warning(config: &Config) -> Option<&'static str> {
    let allowed = [Provider::Twilio, Provider::Telnyx].into_iter().any(|p| config.unsigned(p) == Unsigned::Allowed);
    allowed.then_some("warning: VOXBRIDGE_ALLOW_UNSIGNED=true: carrier requests are accepted unsigned\n")
}
