//! The carriers this server is configured with, behind one type: place a call, answer one,
//! hang up, ask whether a call is still up. The queue, the API and the bridge use it without
//! knowing which carrier a call is on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::rest::RestError;
use super::telnyx::rest::{self as telnyx_rest, StreamCodec, TelnyxRest};
use super::twilio::rest::{NewCall, TwilioRest};
use super::twilio::status as twilio_status;
use crate::lifecycle::status::CallStatus;
use crate::providers::stream_token::{StreamTokens, TOKEN_TTL};
use crate::store::outbound::Attempt;

/// What a caller hears when the AI fails them (model unreachable or lost, shutdown), unless
/// `VOXBRIDGE_APOLOGY` says otherwise: Twilio's TwiML says it after the stream; Telnyx is asked
/// to speak it.
pub const DEFAULT_APOLOGY: &str = "Sorry, our assistant is not available right now. Please call again later. Goodbye.";
/// Longest wait for the apology to be spoken before hanging up anyway (`call.speak.ended` may
/// reach another machine, or never come).
pub const APOLOGY_WAIT: Duration = Duration::from_secs(15);

/// A telephony carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Provider {
    Twilio,
    Telnyx,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Telnyx => "telnyx",
        }
    }

    /// Whether closing the media socket ends the call (Twilio: the TwiML goes on and hangs up;
    /// Telnyx: the stream is a fork, the call stays up until a hang-up command).
    pub fn stream_close_ends_call(self) -> bool {
        matches!(self, Provider::Twilio)
    }

    /// Whether an inbound call's stream is the only word on its status (Twilio sends inbound
    /// calls no status callback of ours; Telnyx's webhooks report every call).
    pub fn inbound_status_from_stream(self) -> bool {
        matches!(self, Provider::Twilio)
    }

    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "twilio" => Some(Provider::Twilio),
            "telnyx" => Some(Provider::Telnyx),
            _ => None,
        }
    }
}

/// One attempt of an outbound call.
#[derive(Debug, Clone, PartialEq)]
pub struct DialRequest<'a> {
    pub call_id: &'a str,
    pub to: &'a str,
    pub from: &'a str,
    pub ring_timeout_s: u32,
    pub machine_detection: bool,
    pub attempt: i64,
    /// The carrier ends a connected call after this long: a backstop behind the bridge's own
    /// duration cap (the AI says goodbye first).
    pub time_limit_s: u32,
}

/// What the carrier says about a call we may have lost track of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    Live,
    /// Ended; with its final status when the carrier reports one.
    Ended(Option<CallStatus>),
}

/// Why a carrier request could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CarrierError {
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    #[error(transparent)]
    Rest(#[from] RestError),
    #[error("{0}")]
    Unreadable(String),
}

impl CarrierError {
    pub fn is_retryable(&self) -> bool {
        match self {
            CarrierError::Rest(e) => e.is_retryable(),
            CarrierError::NotConfigured(_) | CarrierError::Unreadable(_) => true,
        }
    }
}

/// Telnyx needs more than a REST client: the stream settings and the tokens in stream URLs.
#[derive(Debug, Clone)]
pub struct TelnyxLink {
    pub rest: TelnyxRest,
    pub codec: StreamCodec,
}

/// Every configured carrier, and how to reach us.
#[derive(Debug, Clone)]
pub struct Carriers {
    pub twilio: Option<TwilioRest>,
    pub telnyx: Option<TelnyxLink>,
    /// Our public `https://…` base, without a trailing slash.
    pub public_url: String,
    pub tokens: Arc<StreamTokens>,
    /// Speeches this machine waits on before hanging up, by call control id.
    pub speeches: Arc<SpeechWaits>,
    /// What a caller the AI failed hears ([`DEFAULT_APOLOGY`] unless configured).
    pub apology: String,
    /// The machine named in the stream URLs of the calls this one dials (on Fly, with pre-warm:
    /// `control::steer`), as [`MACHINE_PARAM`].
    pub machine: Option<String>,
}

/// The query parameter naming the machine that dialled a call (Twilio: of the TwiML URL, which
/// moves it into the stream's path; Telnyx: of the stream URL).
pub const MACHINE_PARAM: &str = "machine";

/// Calls waiting here for `call.speak.ended`.
#[derive(Debug, Default)]
pub struct SpeechWaits(Mutex<HashMap<String, Arc<Notify>>>);

impl SpeechWaits {
    fn register(&self, carrier_call_id: &str) -> Arc<Notify> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(carrier_call_id.to_string()).or_default())
    }

    fn remove(&self, carrier_call_id: &str) -> Option<Arc<Notify>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(carrier_call_id)
    }
}

impl Carriers {
    /// The audio format `provider`'s media streams will carry (Twilio: μ-law; Telnyx: the
    /// configured codec, Opus decoded to 16 kHz PCM) — what a model session opened before the
    /// stream must expect.
    pub fn stream_format(&self, provider: Provider) -> crate::media::StreamFormat {
        use crate::media::{Codec, SampleRate, StreamFormat};
        match (provider, self.telnyx.as_ref().map(|t| t.codec)) {
            (Provider::Telnyx, Some(StreamCodec::Pcma)) => StreamFormat::PCMA_8K,
            (Provider::Telnyx, Some(StreamCodec::L16 | StreamCodec::Opus)) => {
                StreamFormat { codec: Codec::L16, rate: SampleRate::HZ_16000 }
            }
            _ => StreamFormat::PCMU_8K,
        }
    }

    pub fn is_configured(&self, provider: Provider) -> bool {
        match provider {
            Provider::Twilio => self.twilio.is_some(),
            Provider::Telnyx => self.telnyx.is_some(),
        }
    }

    /// The carrier account a dial through `provider` is placed on (its calls-per-second limit is
    /// the account's): `twilio:AC…`, `telnyx:<connection id>`.
    pub fn account_key(&self, provider: Provider) -> String {
        let account = match provider {
            Provider::Twilio => self.twilio.as_ref().map(|t| t.account_sid()),
            Provider::Telnyx => self.telnyx.as_ref().map(|t| t.rest.connection_id()),
        };
        format!("{}:{}", provider.as_str(), account.unwrap_or_default())
    }

    /// Why a call through `provider` cannot be dialled now, naming the variables to set.
    pub fn not_dialled_because(&self, provider: Provider) -> Option<&'static str> {
        if self.is_configured(provider) {
            return None;
        }
        Some(match provider {
            Provider::Twilio => {
                "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set; the call waits queued until the server runs with them"
            }
            Provider::Telnyx => {
                "TELNYX_API_KEY and TELNYX_CONNECTION_ID are not set; the call waits queued until the server runs with them"
            }
        })
    }

    fn twilio(&self) -> Result<&TwilioRest, CarrierError> {
        self.twilio.as_ref().ok_or(CarrierError::NotConfigured("Twilio (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)"))
    }

    fn telnyx(&self) -> Result<&TelnyxLink, CarrierError> {
        self.telnyx.as_ref().ok_or(CarrierError::NotConfigured("Telnyx (TELNYX_API_KEY, TELNYX_CONNECTION_ID)"))
    }

    /// `wss://…/media/telnyx?call_id=…&token=…` with a fresh one-time token valid for `ttl`
    /// (and the dialling `machine`, if any).
    pub fn telnyx_stream_url(&self, call_id: &str, ttl: Duration, machine: Option<&str>) -> String {
        let token = self.tokens.mint_for(call_id, crate::store::now_ms(), ttl);
        let ws = ws_base(&self.public_url);
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("call_id", call_id).append_pair("token", &token);
        if let Some(machine) = machine {
            query.append_pair(MACHINE_PARAM, machine);
        }
        let query = query.finish();
        format!("{ws}/media/telnyx?{query}")
    }

    /// Places one attempt; returns the carrier's call id.
    pub async fn dial(&self, provider: Provider, req: &DialRequest<'_>) -> Result<String, CarrierError> {
        let base = &self.public_url;
        match provider {
            Provider::Twilio => {
                let call = NewCall {
                    to: req.to.into(),
                    from: req.from.into(),
                    twiml_url: match &self.machine {
                        Some(machine) => format!("{base}/twiml/{}?{MACHINE_PARAM}={machine}", req.call_id),
                        None => format!("{base}/twiml/{}", req.call_id),
                    },
                    // The attempt travels with every callback: applied even before the sid is known.
                    status_callback: format!(
                        "{base}/webhooks/twilio/status?call_id={}&attempt={}",
                        req.call_id, req.attempt
                    ),
                    timeout_s: req.ring_timeout_s,
                    machine_detection: req.machine_detection,
                    time_limit_s: req.time_limit_s,
                };
                Ok(self.twilio()?.create_call(&call).await?)
            }
            Provider::Telnyx => {
                let link = self.telnyx()?;
                // The stream opens when the callee answers: the token must outlive the ringing.
                let ttl = Duration::from_secs(u64::from(req.ring_timeout_s)) + TOKEN_TTL;
                let dial = telnyx_rest::Dial {
                    call_id: req.call_id.into(),
                    to: req.to.into(),
                    from: req.from.into(),
                    webhook_url: format!("{base}/webhooks/telnyx"),
                    timeout_secs: req.ring_timeout_s,
                    machine_detection: req.machine_detection,
                    stream: telnyx_rest::Stream {
                        url: self.telnyx_stream_url(req.call_id, ttl, self.machine.as_deref()),
                        codec: link.codec,
                    },
                    attempt: req.attempt,
                    time_limit_secs: req.time_limit_s,
                };
                Ok(link.rest.dial(&dial).await?)
            }
        }
    }

    /// Answers an inbound Telnyx call, streaming it to us as `call_id`.
    pub async fn answer_telnyx(&self, call_control_id: &str, call_id: &str) -> Result<(), CarrierError> {
        let link = self.telnyx()?;
        let stream = telnyx_rest::Stream { url: self.telnyx_stream_url(call_id, TOKEN_TTL, None), codec: link.codec };
        Ok(link.rest.answer(call_control_id, call_id, Some(&stream)).await?)
    }

    /// Streams a Telnyx call whose transfer nobody answered to us again; the new stream tells
    /// the call why (`resume`, `transfer_to`), so the AI can say so.
    pub async fn resume_telnyx(
        &self,
        call_control_id: &str,
        call_id: &str,
        why: &str,
        to: &str,
    ) -> Result<(), CarrierError> {
        let link = self.telnyx()?;
        let mut url = self.telnyx_stream_url(call_id, TOKEN_TTL, None);
        let extra: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("resume", why)
            .append_pair("transfer_to", to)
            .finish();
        url.push('&');
        url.push_str(&extra);
        let stream = telnyx_rest::Stream { url, codec: link.codec };
        Ok(link.rest.start_streaming(call_control_id, call_id, &stream).await?)
    }

    /// Says `text` on a Telnyx call, then hangs up (`call.speak.ended`; at once if it cannot be said).
    pub async fn say_then_hang_up_telnyx(
        &self,
        call_control_id: &str,
        call_id: &str,
        text: &str,
    ) -> Result<(), CarrierError> {
        if let Err(e) = self.telnyx()?.rest.speak_then_hang_up(call_control_id, call_id, text).await {
            tracing::warn!(error = %e, call_id, "cannot speak the message; hanging up");
            return self.hang_up(Provider::Telnyx, call_control_id).await;
        }
        Ok(())
    }

    /// Answers an inbound Telnyx call only to say the [`apology`](Self::apology) and hang up (this machine is
    /// draining: as Twilio's callers get the apology TwiML).
    pub async fn answer_to_apologize(&self, call_control_id: &str, call_id: &str) -> Result<(), CarrierError> {
        self.telnyx()?.rest.answer(call_control_id, call_id, None).await?;
        self.apologize_and_hang_up(Provider::Telnyx, call_control_id, call_id).await
    }

    /// Ends a live call. (Closing a Telnyx stream does not end the call: this must be sent.)
    pub async fn hang_up(&self, provider: Provider, carrier_call_id: &str) -> Result<(), CarrierError> {
        match provider {
            Provider::Twilio => Ok(self.twilio()?.hang_up(carrier_call_id).await?),
            Provider::Telnyx => {
                let command_id = format!("hangup-{carrier_call_id}");
                Ok(self.telnyx()?.rest.hang_up(carrier_call_id, &command_id).await?)
            }
        }
    }

    /// Hands the caller on `carrier_call_id` over to `to` (a number or `sip:…`).
    /// Rings `to` for `ring_s` and connects the caller when the human answers; how the human's
    /// leg ended comes back signed (Twilio: the `<Dial action>` callback, `/webhooks/twilio/dial`;
    /// Telnyx: the leg's own webhooks, named by its `client_state`).
    pub async fn transfer(
        &self,
        provider: Provider,
        carrier_call_id: &str,
        call_id: &str,
        to: &str,
        ring_s: u32,
        caller_id: Option<&str>,
    ) -> Result<(), CarrierError> {
        match provider {
            Provider::Twilio => {
                let action = format!(
                    "{}/webhooks/twilio/dial?call_id={}&to={}",
                    self.public_url,
                    url::form_urlencoded::byte_serialize(call_id.as_bytes()).collect::<String>(),
                    url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>()
                );
                let twiml = crate::providers::twilio::twiml::dial(to, ring_s, caller_id, &action);
                Ok(self.twilio()?.redirect(carrier_call_id, &twiml).await?)
            }
            Provider::Telnyx => Ok(self.telnyx()?.rest.transfer(carrier_call_id, call_id, to, ring_s).await?),
        }
    }

    /// Presses `digits` on the call (`w` half a second's pause) through a carrier that has the
    /// command (Telnyx `send_dtmf`); Twilio's keys go in band, as tones (`call::core`).
    pub async fn send_dtmf(&self, provider: Provider, carrier_call_id: &str, digits: &str) -> Result<(), CarrierError> {
        match provider {
            Provider::Telnyx => Ok(self.telnyx()?.rest.send_dtmf(carrier_call_id, digits).await?),
            Provider::Twilio => Err(CarrierError::Unreadable("Twilio takes DTMF in band only".into())),
        }
    }

    /// The AI failed a live call: say the [`apology`](Self::apology), then hang up. Twilio's TwiML does both once
    /// the stream closes; Telnyx speaks it on command, and the call is hung up at
    /// `call.speak.ended` or after [`APOLOGY_WAIT`] — at once if it cannot be spoken.
    pub async fn apologize_and_hang_up(
        &self,
        provider: Provider,
        carrier_call_id: &str,
        call_id: &str,
    ) -> Result<(), CarrierError> {
        if provider == Provider::Twilio {
            return Ok(());
        }
        let spoken = self.speeches.register(carrier_call_id);
        match self.telnyx()?.rest.speak_then_hang_up(carrier_call_id, call_id, &self.apology).await {
            Ok(()) => {
                let _ = tokio::time::timeout(APOLOGY_WAIT, spoken.notified()).await;
            }
            Err(e) => tracing::warn!(error = %e, call_id, "cannot speak the apology; hanging up"),
        }
        self.speeches.remove(carrier_call_id);
        self.hang_up(provider, carrier_call_id).await
    }

    /// `call.speak.ended` for this call: `true` when this machine was waiting to hang it up.
    pub fn speech_ended(&self, carrier_call_id: &str) -> bool {
        self.speeches.remove(carrier_call_id).map(|n| n.notify_one()).is_some()
    }

    /// Whether a call is still up at the carrier (for reconciling after a crash).
    pub async fn call_state(&self, provider: Provider, carrier_call_id: &str) -> Result<CallState, CarrierError> {
        match provider {
            Provider::Twilio => {
                let status = self.twilio()?.call_status(carrier_call_id).await?;
                let form = [("CallSid".to_string(), carrier_call_id.to_string()), ("CallStatus".to_string(), status)];
                let s = twilio_status::parse(&form).map_err(|e| CarrierError::Unreadable(e.to_string()))?.status;
                Ok(if s.is_terminal() { CallState::Ended(Some(s)) } else { CallState::Live })
            }
            Provider::Telnyx => Ok(if self.telnyx()?.rest.is_alive(carrier_call_id).await? {
                CallState::Live
            } else {
                CallState::Ended(None)
            }),
        }
    }

    /// The carrier's id for an attempt whose create answer never reached us (the worker died in
    /// the round trip), if the carrier has such a call: Twilio's calls to the number since the
    /// attempt began; Telnyx's live calls whose `client_state` names the attempt (one that has
    /// already ended there is not found).
    pub async fn find_attempt(&self, a: &Attempt) -> Result<Option<String>, CarrierError> {
        let since = a.started_at.unwrap_or(0);
        match Provider::parse(&a.provider).unwrap_or(Provider::Twilio) {
            Provider::Twilio => {
                let from = a.from_number.as_deref().unwrap_or_default();
                Ok(self.twilio()?.find_call(&a.to_number, from, since).await?)
            }
            Provider::Telnyx => Ok(self.telnyx()?.rest.find_active(&a.call_id, a.attempt).await?),
        }
    }

    /// Hangs up in the background, logging a failure (for paths that must answer now).
    pub fn hang_up_soon(&self, provider: Provider, carrier_call_id: &str) {
        let carriers = self.clone();
        let id = carrier_call_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = carriers.hang_up(provider, &id).await {
                tracing::warn!(error = %e, provider = provider.as_str(), "hang-up failed");
            }
        });
    }
}

/// `https://x` → `wss://x` (and `http` → `ws`).
pub fn ws_base(public_url: &str) -> String {
    let base = public_url.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    }
}
