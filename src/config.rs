//! One typed configuration from flags and environment variables (names in the contract),
//! validated before a port is bound. Tests build it directly; nothing reads the environment
//! after start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::providers::carrier::Provider;
use crate::providers::telnyx::rest::StreamCodec;
use clap::{Args, ValueEnum};

use crate::model::ModelAudio;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AudioMode {
    /// Decode and resample to 24 kHz PCM for the model.
    Pcm16,
    /// Pass μ-law/A-law straight through to the model.
    G711,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Server settings. Every field is also an environment variable.
#[derive(Debug, Clone, Args)]
pub struct Config {
    #[arg(long, env = "VOXBRIDGE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// The URL providers reach us at; used for TwiML stream URLs and signature checks.
    #[arg(long, env = "VOXBRIDGE_PUBLIC_URL", default_value = "http://localhost:8080")]
    pub public_url: String,
    #[arg(long, env = "VOXBRIDGE_DATABASE_URL", default_value = "sqlite://voxbridge.db")]
    pub database_url: String,
    #[arg(long, env = "VOXBRIDGE_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    /// Realtime endpoint. Without an API key and with this left at the default, the built-in
    /// mock model serves calls.
    #[arg(long, env = "VOXBRIDGE_REALTIME_URL", default_value = DEFAULT_REALTIME_URL)]
    pub realtime_url: String,
    #[arg(long, env = "VOXBRIDGE_REALTIME_MODEL", default_value = "gpt-realtime")]
    pub realtime_model: String,
    /// The API for calls that do not choose one (`model_api`).
    #[arg(long, env = "VOXBRIDGE_MODEL_API", value_enum, ignore_case = true, default_value = "realtime")]
    pub model_api: ModelApiArg,
    /// GPT-Live endpoint. Without an API key and with this left at the default, the built-in
    /// mock model serves Live calls too.
    #[arg(long, env = "VOXBRIDGE_LIVE_URL", default_value = DEFAULT_LIVE_URL)]
    pub live_url: String,
    #[arg(long, env = "VOXBRIDGE_LIVE_MODEL", default_value = "gpt-live-1.1")]
    pub live_model: String,
    /// A rehearsal script the built-in mock model follows (see `mock_realtime::script`): what
    /// the AI says and which tool, outcome, transfer or end it asks for after each caller turn.
    #[arg(long, env = "VOXBRIDGE_MOCK_SCRIPT")]
    pub mock_script: Option<std::path::PathBuf>,
    /// The Responses model GPT-Live delegates tool calls to (its tokens are billed too).
    #[arg(long, env = "VOXBRIDGE_LIVE_BACKEND_MODEL", default_value = crate::model::DEFAULT_LIVE_BACKEND_MODEL)]
    pub live_backend_model: String,
    /// When the chosen API cannot be reached at call start, or again after its session was lost
    /// mid-call, serve the call with the other one (the caller hears an AI, not the apology);
    /// written to the call's history.
    #[arg(long, env = "VOXBRIDGE_MODEL_FAILOVER", default_value_t = true, action = clap::ArgAction::Set)]
    pub model_failover: bool,
    /// Open an outbound call's model session, and have its greeting ready, while the phone
    /// rings (closed at once if nobody answers).
    #[arg(long, env = "VOXBRIDGE_PREWARM", default_value_t = true, action = clap::ArgAction::Set)]
    pub prewarm: bool,
    #[arg(long, env = "VOXBRIDGE_VOICE", default_value = "marin")]
    pub voice: String,
    #[arg(long, env = "VOXBRIDGE_INSTRUCTIONS", default_value = DEFAULT_INSTRUCTIONS)]
    pub instructions: String,
    /// Spoken first by the AI; empty for none.
    #[arg(long, env = "VOXBRIDGE_GREETING", default_value = "Hello! How can I help you today?")]
    pub greeting: String,
    #[arg(long, env = "VOXBRIDGE_AUDIO_MODE", value_enum, ignore_case = true, default_value = "pcm16")]
    pub audio_mode: AudioMode,
    /// Outbound calls in progress at once (control plane).
    #[arg(long, env = "VOXBRIDGE_MAX_CONCURRENT_CALLS", default_value_t = 30)]
    pub max_concurrent_calls: usize,
    /// Live media streams at once; further upgrades get 503.
    #[arg(long, env = "VOXBRIDGE_MAX_LIVE_CALLS", default_value_t = 1000)]
    pub max_live_calls: usize,
    /// Media sockets that have not yet proven their call (Twilio sends its token in `start`),
    /// in total; they never hold a live-call slot.
    #[arg(long, env = "VOXBRIDGE_MAX_PENDING_STREAMS", default_value_t = 256)]
    pub max_pending_streams: usize,
    /// The same, from one peer address.
    #[arg(long, env = "VOXBRIDGE_MAX_PENDING_STREAMS_PER_IP", default_value_t = 32)]
    pub max_pending_streams_per_ip: usize,
    /// A `call_window` JSON object applied to API calls that give none, e.g.
    /// `{"timezone":"America/New_York","start":"09:00","end":"20:00"}` (unset: calls go out at any hour).
    #[arg(long, env = "VOXBRIDGE_DEFAULT_CALL_WINDOW")]
    pub default_call_window: Option<String>,
    /// HTTP connections open at once; at the cap the longest-idle one is closed to make room.
    #[arg(long, env = "VOXBRIDGE_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// A connection must send a complete request head this soon after it opens or goes idle
    /// (keep-alive), or it is closed: idle and slow clients hold no socket for long.
    #[arg(long, env = "VOXBRIDGE_HEADER_READ_TIMEOUT_MS", default_value_t = 30_000)]
    pub header_read_timeout_ms: u64,
    /// The duration cap of calls that give no `max_duration_s`: the AI wraps up, says goodbye
    /// and hangs up at it (the carrier's own time limit, a minute later, is the backstop).
    #[arg(long, env = "VOXBRIDGE_MAX_CALL_DURATION_S", default_value_t = 1800)]
    pub max_call_duration_s: u32,
    /// Dials per second per carrier account (carriers refuse bursts above their CPS); unset:
    /// unpaced. Calls beyond it wait in the queue for the next second.
    #[arg(long, env = "VOXBRIDGE_MAX_DIALS_PER_SECOND")]
    pub max_dials_per_second: Option<std::num::NonZeroU32>,
    /// A JSON price table (models per million tokens, carriers per minute) replacing the
    /// built-in one (`pricing.rs`, dated).
    #[arg(long, env = "VOXBRIDGE_PRICES")]
    pub prices: Option<String>,
    /// Requests per second per API key (per peer address without keys) on `/v1`, bursts of
    /// twice that; beyond it, 429 with `Retry-After`. Unset: no limit.
    #[arg(long, env = "VOXBRIDGE_API_RATE_LIMIT")]
    pub api_rate_limit: Option<std::num::NonZeroU32>,
    /// When set, `GET /metrics` needs `Authorization: Bearer <this>` (Prometheus: `authorization`
    /// in the scrape config); unset, it is open like any exporter.
    #[arg(long, env = "VOXBRIDGE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Accept carrier requests and media streams with no signature even though
    /// VOXBRIDGE_PUBLIC_URL is not local (development through a tunnel only).
    #[arg(long, env = "VOXBRIDGE_ALLOW_UNSIGNED", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_unsigned: bool,
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    /// With this set, every Twilio request and media upgrade must be signed.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,
    #[arg(long, env = "TWILIO_FROM_NUMBER")]
    pub twilio_from_number: Option<String>,
    #[arg(long, env = "TWILIO_API_BASE", default_value = "https://api.twilio.com")]
    pub twilio_api_base: String,
    #[arg(long, env = "TELNYX_API_KEY", hide_env_values = true)]
    pub telnyx_api_key: Option<String>,
    /// The Call Control application that places and answers calls.
    #[arg(long, env = "TELNYX_CONNECTION_ID")]
    pub telnyx_connection_id: Option<String>,
    #[arg(long, env = "TELNYX_FROM_NUMBER")]
    pub telnyx_from_number: Option<String>,
    /// Base64 Ed25519 public key (portal → Keys & Credentials); when set, webhooks must be signed.
    #[arg(long, env = "TELNYX_PUBLIC_KEY")]
    pub telnyx_public_key: Option<String>,
    #[arg(long, env = "TELNYX_API_BASE", default_value = "https://api.telnyx.com")]
    pub telnyx_api_base: String,
    /// Codec Telnyx streams in both directions (PCMU passes straight through to the model in g711 mode).
    #[arg(long, env = "VOXBRIDGE_TELNYX_CODEC", value_enum, ignore_case = true, default_value = "PCMU")]
    pub telnyx_codec: StreamCodec,
    /// Carrier for `POST /v1/calls` without a `provider` field.
    #[arg(long, env = "VOXBRIDGE_DEFAULT_PROVIDER", value_enum, ignore_case = true, default_value = "twilio")]
    pub default_provider: Provider,
    #[arg(long, env = "VOXBRIDGE_RECORD_DIR")]
    pub record_dir: Option<PathBuf>,
    #[arg(long, env = "VOXBRIDGE_LOG_FORMAT", value_enum, ignore_case = true, default_value = "plain")]
    pub log_format: LogFormat,
    /// Audio kept queued at the carrier ahead of playback.
    #[arg(long, env = "VOXBRIDGE_PLAYOUT_LEAD_MS", default_value_t = 1500)]
    pub playout_lead_ms: u64,
    /// A stream must send `start` this soon after the upgrade.
    #[arg(long, env = "VOXBRIDGE_START_TIMEOUT_MS", default_value_t = 5000)]
    pub start_timeout_ms: u64,
    #[arg(long, env = "VOXBRIDGE_MODEL_CONNECT_TIMEOUT_MS", default_value_t = 3000)]
    pub model_connect_timeout_ms: u64,
    /// A committed caller turn the model answers nothing to within this long counts as a lost
    /// model: a new session is tried (as when its socket drops).
    #[arg(long, env = "VOXBRIDGE_MODEL_RESPONSE_TIMEOUT_MS", default_value_t = 5000)]
    pub model_response_timeout_ms: u64,
    /// A model session this old is replaced by a new one (the conversation carried over) at the
    /// next quiet moment, before the model's own 60-minute limit ends it.
    #[arg(long, env = "VOXBRIDGE_MODEL_SESSION_ROTATE_S", default_value_t = 3300)]
    pub model_session_rotate_s: u64,
    /// A model socket silent this long (it is pinged at least every third of it) is lost: a new session
    /// is tried, as for a dropped socket (docs/design/reliability.md row 7).
    #[arg(long, env = "VOXBRIDGE_MODEL_IDLE_TIMEOUT_MS", default_value_t = 20_000)]
    pub model_idle_timeout_ms: u64,
    /// A carrier stream that sends nothing this long is broken (carriers stream audio, silence
    /// included, every 20 ms): the call ends with the apology (docs/design/reliability.md row 12).
    #[arg(long, env = "VOXBRIDGE_CARRIER_IDLE_TIMEOUT_MS", default_value_t = 15_000)]
    pub carrier_idle_timeout_ms: u64,
    /// What a caller hears when the AI fails them (Twilio `<Say>`, Telnyx `speak`).
    #[arg(long, env = "VOXBRIDGE_APOLOGY", default_value = crate::providers::carrier::DEFAULT_APOLOGY)]
    pub apology: String,
    /// First retry delay after a busy / unanswered / failed-to-dial attempt; doubles per attempt.
    #[arg(long, env = "VOXBRIDGE_RETRY_BASE_MS", default_value_t = 300_000)]
    pub retry_base_ms: u64,
    /// Longest retry delay.
    #[arg(long, env = "VOXBRIDGE_RETRY_CAP_MS", default_value_t = 1_200_000)]
    pub retry_cap_ms: u64,
    /// Names this instance in job leases and logs (several instances share a PostgreSQL
    /// store). Empty: Fly's `FLY_MACHINE_ID`, else a random id.
    #[arg(long, env = "VOXBRIDGE_INSTANCE_ID", default_value = "")]
    pub instance_id: String,
    /// The Fly Machine this instance runs on (Fly sets it; empty elsewhere). On Fly, with
    /// pre-warm on, an outbound call's media stream is steered to the machine that dialled it
    /// and holds its pre-warmed session (`fly-replay`, `control::steer`).
    #[arg(long, env = "FLY_MACHINE_ID", default_value = "", hide = true)]
    pub fly_machine_id: String,
    /// How often the dialling worker looks for due calls.
    #[arg(long, env = "VOXBRIDGE_WORKER_POLL_MS", default_value_t = 500)]
    pub worker_poll_ms: u64,
    /// A dialling worker's lease on a call; renewed while the call is live.
    #[arg(long, env = "VOXBRIDGE_LEASE_MS", default_value_t = 60_000)]
    pub lease_ms: u64,
    /// How long a carrier may be silent past a deadline (the ring timeout, the end of a call's
    /// stream, its time limit) before the sweeper asks the carrier itself.
    #[arg(long, env = "VOXBRIDGE_STATUS_GRACE_MS", default_value_t = 60_000)]
    pub status_grace_ms: u64,
    /// Seconds an outbound call rings before it counts as unanswered.
    #[arg(long, env = "VOXBRIDGE_RING_TIMEOUT_S", default_value_t = 30)]
    pub ring_timeout_s: u32,
    /// Finished job rows are deleted after these many hours (completed / failed or canceled).
    #[arg(long, env = "VOXBRIDGE_RETAIN_DONE_JOBS_H", default_value_t = 24)]
    pub retain_done_jobs_h: u64,
    #[arg(long, env = "VOXBRIDGE_RETAIN_FAILED_JOBS_H", default_value_t = 168)]
    pub retain_failed_jobs_h: u64,
    /// Finished call records and transcripts are deleted after this many days.
    #[arg(long, env = "VOXBRIDGE_CALL_RETENTION_DAYS", default_value_t = 90)]
    pub call_retention_days: u64,
    /// Events for calls that name no `webhook_url` go here (unset: none).
    #[arg(long, env = "VOXBRIDGE_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Signs every event (`Voxbridge-Signature: t=…,v1=<hex HMAC-SHA256(secret, "t.body")>`).
    #[arg(long, env = "VOXBRIDGE_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Inbound calls are first `POST`ed here (`call.incoming`, signed as events are); the answer
    /// chooses the agent and its variables, or rejects the call (unset: the number's agent).
    #[arg(long, env = "VOXBRIDGE_INBOUND_WEBHOOK_URL")]
    pub inbound_webhook_url: Option<String>,
    /// How long an inbound call waits for that answer before the number's agent serves it.
    #[arg(long, env = "VOXBRIDGE_INBOUND_WEBHOOK_TIMEOUT_MS", default_value_t = 1500)]
    pub inbound_webhook_timeout_ms: u64,
    /// Where post-call analyses are sent (the OpenAI Responses API).
    #[arg(long, env = "VOXBRIDGE_ANALYSIS_URL", default_value = "https://api.openai.com/v1/responses")]
    pub analysis_url: String,
    /// The model of analyses that name none.
    #[arg(long, env = "VOXBRIDGE_ANALYSIS_MODEL", default_value = "gpt-5-mini")]
    pub analysis_model: String,
    /// The first retry of a failed analysis waits this long (doubling, at most a minute).
    #[arg(long, env = "VOXBRIDGE_ANALYSIS_RETRY_MS", default_value_t = 5000)]
    pub analysis_retry_ms: u64,
    /// Where call recordings are kept: `off`, `local:<dir>`, or `s3://bucket/prefix` (with the
    /// usual `AWS_*` variables; `AWS_ENDPOINT_URL` for an S3-compatible server).
    #[arg(long, env = "VOXBRIDGE_RECORDINGS", default_value = "off")]
    pub recordings: String,
    /// Where recordings are written during calls before their upload to S3 (default: a
    /// `voxbridge-recordings` directory in the system's temporary directory).
    #[arg(long, env = "VOXBRIDGE_RECORDINGS_SPOOL")]
    pub recordings_spool: Option<PathBuf>,
    /// The first retry of a failed recording upload waits this long (doubling, at most five minutes).
    #[arg(long, env = "VOXBRIDGE_RECORDINGS_RETRY_MS", default_value_t = 5000)]
    pub recordings_retry_ms: u64,
    /// Allow webhook targets on loopback and private networks (development only).
    #[arg(long, env = "VOXBRIDGE_WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
    pub webhook_allow_private: bool,
    /// On SIGTERM/SIGINT, live calls get this long to finish before they are ended.
    #[arg(long, env = "VOXBRIDGE_DRAIN_TIMEOUT_S", default_value_t = 280)]
    pub drain_timeout_s: u64,
}

pub const DEFAULT_REALTIME_URL: &str = "wss://api.openai.com/v1/realtime";
pub const DEFAULT_LIVE_URL: &str = "wss://api.openai.com/v1/live/sessions";

/// `VOXBRIDGE_MODEL_API`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelApiArg {
    Realtime,
    Live,
}

impl From<ModelApiArg> for crate::model::ModelApi {
    fn from(a: ModelApiArg) -> Self {
        match a {
            ModelApiArg::Realtime => crate::model::ModelApi::Realtime,
            ModelApiArg::Live => crate::model::ModelApi::Live,
        }
    }
}
const DEFAULT_INSTRUCTIONS: &str = "You are a friendly phone assistant. Keep answers short and conversational. When the caller is done, say goodbye and call end_call.";

/// Whether a carrier's unsigned requests are served (see [`Config::unsigned`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsigned {
    /// The carrier's signing secret is configured: every request must be signed.
    Checked,
    /// No secret, but the public URL is local: nothing outside this host can reach it.
    LocalOnly,
    /// No secret, a public URL, and the operator said `VOXBRIDGE_ALLOW_UNSIGNED=true`.
    Allowed,
    /// No secret and a public URL: refused, since anyone could spend the operator's credit.
    Refused,
}

impl Unsigned {
    /// Whether a request that carries no signature is served.
    pub fn serves_unsigned(self) -> bool {
        matches!(self, Unsigned::LocalOnly | Unsigned::Allowed)
    }
}

/// A setting that stops start-up.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

/// A command-line parse error restated in terms of the environment variable that caused it,
/// when the bad value came from one (`VOXBRIDGE_AUDIO_MODE: 'bogus' is not one of pcm16, g711`);
/// `None` when the value was typed as a flag (clap's own message names the flag then).
pub fn env_error(command: &clap::Command, err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(err.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let ContextValue::String(arg) = err.get(ContextKind::InvalidArg)? else { return None };
    let long = arg.trim_start_matches("--").split([' ', '=']).next()?;
    let ContextValue::String(value) = err.get(ContextKind::InvalidValue)? else { return None };
    let variable = find_env(command, long)?;
    if std::env::var(&variable).ok().as_deref() != Some(value.as_str()) {
        return None;
    }
    let problem = match err.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) => format!("'{value}' is not one of {}", valid.join(", ")),
        _ => {
            let why = std::error::Error::source(err).map(|s| s.to_string()).unwrap_or_else(|| "invalid".into());
            format!("'{value}' is not valid: {why}")
        }
    };
    Some(format!("{variable}: {problem}"))
}

fn find_env(command: &clap::Command, long: &str) -> Option<String> {
    command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .or_else(|| command.get_subcommands().find_map(|sub| find_env(sub, long)))
}

impl Config {
    /// Defaults as if no variable were set (for tests and embedding).
    /// This instance's name: `VOXBRIDGE_INSTANCE_ID`, else `FLY_MACHINE_ID`, else random (chosen
    /// once per process).
    pub fn instance(&self) -> String {
        static RANDOM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        if !self.instance_id.trim().is_empty() {
            return self.instance_id.trim().to_string();
        }
        match self.fly_machine_id.trim() {
            "" => RANDOM.get_or_init(|| format!("vb-{:08x}", rand::random::<u32>())).clone(),
            id => id.to_string(),
        }
    }

    pub fn defaults() -> Config {
        use clap::Parser;
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            c: Config,
        }
        // Parsing an empty argument list with every field defaulted cannot fail.
        Only::try_parse_from(["voxbridge"]).map(|o| o.c).unwrap_or_else(|e| unreachable!("defaults parse: {e}"))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = url::Url::parse(&self.public_url)
            .map_err(|e| ConfigError { variable: "VOXBRIDGE_PUBLIC_URL", problem: format!("not a URL ({e})") })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError {
                variable: "VOXBRIDGE_PUBLIC_URL",
                problem: "must be an http(s) URL with a host".into(),
            });
        }
        // Telnyx `speak` takes at most 3,000 characters, and an empty one is refused.
        if self.apology.trim().is_empty() || self.apology.chars().count() > 3000 {
            return Err(ConfigError {
                variable: "VOXBRIDGE_APOLOGY",
                problem: "must be some text, at most 3000 characters".into(),
            });
        }
        for (variable, url) in [("VOXBRIDGE_REALTIME_URL", &self.realtime_url), ("VOXBRIDGE_LIVE_URL", &self.live_url)]
        {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                return Err(ConfigError { variable, problem: "must start with ws:// or wss://".into() });
            }
        }
        if self.max_pending_streams == 0 || self.max_pending_streams_per_ip == 0 {
            return Err(ConfigError {
                variable: "VOXBRIDGE_MAX_PENDING_STREAMS",
                problem: "VOXBRIDGE_MAX_PENDING_STREAMS and VOXBRIDGE_MAX_PENDING_STREAMS_PER_IP must be at least 1"
                    .into(),
            });
        }
        self.price_table()?;
        if !(30..=14_400).contains(&self.max_call_duration_s) {
            return Err(ConfigError {
                variable: "VOXBRIDGE_MAX_CALL_DURATION_S",
                problem: "must be from 30 to 14400 seconds (carriers' own limits)".into(),
            });
        }
        if self.max_connections == 0 {
            return Err(ConfigError { variable: "VOXBRIDGE_MAX_CONNECTIONS", problem: "must be at least 1".into() });
        }
        if self.header_read_timeout_ms < 100 {
            return Err(ConfigError {
                variable: "VOXBRIDGE_HEADER_READ_TIMEOUT_MS",
                problem: "must be at least 100".into(),
            });
        }
        if self.max_live_calls == 0 {
            return Err(ConfigError { variable: "VOXBRIDGE_MAX_LIVE_CALLS", problem: "must be at least 1".into() });
        }
        if self.playout_lead_ms < 100 {
            return Err(ConfigError {
                variable: "VOXBRIDGE_PLAYOUT_LEAD_MS",
                problem: "must be at least 100 (five 20 ms frames)".into(),
            });
        }
        if let Some(key) = &self.telnyx_public_key
            && crate::providers::telnyx::signature::PublicKey::from_base64(key).is_none()
        {
            return Err(ConfigError {
                variable: "TELNYX_PUBLIC_KEY",
                problem: "must be the base64 of a 32-byte Ed25519 public key".into(),
            });
        }
        if self.telnyx_codec == StreamCodec::Opus && !cfg!(feature = "opus") {
            return Err(ConfigError {
                variable: "VOXBRIDGE_TELNYX_CODEC",
                problem: "OPUS needs a build with `--features opus` (libopus)".into(),
            });
        }
        if self.telnyx_api_key.is_some() != self.telnyx_connection_id.is_some() {
            return Err(ConfigError {
                variable: "TELNYX_CONNECTION_ID",
                problem: "TELNYX_API_KEY and TELNYX_CONNECTION_ID are needed together".into(),
            });
        }
        if let Some(url) = self.inbound_webhook_url.as_deref()
            && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        {
            return Err(ConfigError {
                variable: "VOXBRIDGE_INBOUND_WEBHOOK_URL",
                problem: "must be an http(s) URL".into(),
            });
        }
        if !(1..=3_540).contains(&self.model_session_rotate_s) {
            return Err(ConfigError {
                variable: "VOXBRIDGE_MODEL_SESSION_ROTATE_S",
                problem: "must be from 1 to 3540 (the model ends a session at 60 minutes)".into(),
            });
        }
        if !(100..=60_000).contains(&self.model_response_timeout_ms) {
            return Err(ConfigError {
                variable: "VOXBRIDGE_MODEL_RESPONSE_TIMEOUT_MS",
                problem: "must be from 100 to 60000".into(),
            });
        }
        if !(100..=10_000).contains(&self.inbound_webhook_timeout_ms) {
            return Err(ConfigError {
                variable: "VOXBRIDGE_INBOUND_WEBHOOK_TIMEOUT_MS",
                problem: "must be from 100 to 10000 (the caller is ringing meanwhile)".into(),
            });
        }
        if !url::Url::parse(&self.analysis_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(ConfigError { variable: "VOXBRIDGE_ANALYSIS_URL", problem: "must be an http(s) URL".into() });
        }
        if let Err(problem) = crate::recording::setting::Recordings::parse(&self.recordings) {
            return Err(ConfigError { variable: "VOXBRIDGE_RECORDINGS", problem });
        }
        if self.twilio_auth_token.as_deref() == Some("") {
            return Err(ConfigError { variable: "TWILIO_AUTH_TOKEN", problem: "is set but empty".into() });
        }
        Ok(())
    }

    /// `VOXBRIDGE_RECORDINGS` is not `off`.
    pub fn recordings_on(&self) -> bool {
        self.recordings().is_on()
    }

    /// `VOXBRIDGE_RECORDINGS`, parsed (checked at start-up: a bad value is `off` here).
    pub fn recordings(&self) -> crate::recording::setting::Recordings {
        crate::recording::setting::Recordings::parse(&self.recordings).unwrap_or_default()
    }

    /// Where recordings are written during calls (S3: before their upload).
    pub fn recordings_spool(&self) -> PathBuf {
        self.recordings_spool.clone().unwrap_or_else(|| std::env::temp_dir().join("voxbridge-recordings"))
    }

    /// How unsigned requests from `provider` are treated: Twilio is signed with
    /// `TWILIO_AUTH_TOKEN`, Telnyx webhooks with `TELNYX_PUBLIC_KEY`.
    pub fn unsigned(&self, provider: Provider) -> Unsigned {
        let secret = match provider {
            Provider::Twilio => self.twilio_auth_token.is_some(),
            Provider::Telnyx => self.telnyx_public_key.is_some(),
        };
        if secret {
            Unsigned::Checked
        } else if self.public_url_is_local() {
            Unsigned::LocalOnly
        } else if self.allow_unsigned {
            Unsigned::Allowed
        } else {
            Unsigned::Refused
        }
    }

    /// The public URL names this host (`localhost`, a loopback address): no carrier can reach
    /// it, so there is nothing to sign against.
    pub fn public_url_is_local(&self) -> bool {
        let Ok(url) = url::Url::parse(&self.public_url) else { return false };
        match url.host() {
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
    }

    /// True when calls should go to the built-in mock model.
    /// Whether a model at `url` can be used without an API key: OpenAI's own hosts need one.
    fn needs_key(url: &str) -> bool {
        url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .is_some_and(|h| h == "openai.com" || h.ends_with(".openai.com"))
    }

    /// Whether failing over between the APIs at `realtime_url` and `live_url` can help: both
    /// usable (a key, or neither is OpenAI's own). Without a key and one of them OpenAI's, a
    /// failover would only be refused there (and delay the apology).
    pub fn failover_usable(&self, realtime_url: &str, live_url: &str) -> bool {
        self.openai_api_key.is_some() || !(Config::needs_key(realtime_url) || Config::needs_key(live_url))
    }

    pub fn uses_embedded_mock(&self) -> bool {
        self.openai_api_key.is_none() && self.realtime_url == DEFAULT_REALTIME_URL && self.live_url == DEFAULT_LIVE_URL
    }

    /// The default model of `api`.
    pub fn model_of(&self, api: crate::model::ModelApi) -> &str {
        match api {
            crate::model::ModelApi::Realtime => &self.realtime_model,
            crate::model::ModelApi::Live => &self.live_model,
        }
    }

    /// Our public base as a WebSocket URL (`https` → `wss`), without a trailing slash.
    pub fn public_ws_base(&self) -> String {
        crate::providers::carrier::ws_base(&self.public_url)
    }

    /// `VOXBRIDGE_PRICES`, or the built-in table.
    pub fn price_table(&self) -> Result<crate::pricing::Prices, ConfigError> {
        crate::pricing::Prices::from_json(self.prices.as_deref())
            .map_err(|problem| ConfigError { variable: "VOXBRIDGE_PRICES", problem })
    }

    pub fn public_http(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.trim_end_matches('/'))
    }

    pub fn model_audio(&self) -> ModelAudio {
        match self.audio_mode {
            AudioMode::G711 => ModelAudio::Pcmu,
            AudioMode::Pcm16 => ModelAudio::Pcm24k,
        }
    }

    pub fn greeting(&self) -> Option<String> {
        let g = self.greeting.trim();
        (!g.is_empty()).then(|| g.to_string())
    }

    pub fn start_timeout(&self) -> Duration {
        Duration::from_millis(self.start_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract_and_validate() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.public_url, "http://localhost:8080");
        assert_eq!(c.audio_mode, AudioMode::Pcm16);
        assert_eq!(c.max_concurrent_calls, 30);
        assert!(c.uses_embedded_mock());
        c.validate().unwrap();
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let mut c = Config::defaults();
        c.public_url = "not a url".into();
        assert_eq!(c.validate().unwrap_err().variable, "VOXBRIDGE_PUBLIC_URL");
        let mut c = Config::defaults();
        c.realtime_url = "http://x".into();
        assert_eq!(c.validate().unwrap_err().variable, "VOXBRIDGE_REALTIME_URL");
        let mut c = Config::defaults();
        c.apology = " ".into();
        assert_eq!(c.validate().unwrap_err().variable, "VOXBRIDGE_APOLOGY");
    }

    #[test]
    fn telnyx_settings_are_checked_at_start_up() {
        let mut c = Config::defaults();
        c.telnyx_api_key = Some("KEY".into());
        assert_eq!(c.validate().unwrap_err().variable, "TELNYX_CONNECTION_ID", "both or neither");
        let mut c = Config::defaults();
        c.telnyx_public_key = Some("c2hvcnQ=".into());
        assert_eq!(c.validate().unwrap_err().variable, "TELNYX_PUBLIC_KEY");
        let mut c = Config::defaults();
        c.telnyx_codec = StreamCodec::Opus;
        assert_eq!(c.validate().is_ok(), cfg!(feature = "opus"), "OPUS only in builds that have it");
    }

    #[test]
    fn failover_needs_a_key_wherever_an_endpoint_is_openais() {
        let mut c = Config::defaults();
        let mock = "ws://127.0.0.1:8090/v1/realtime";
        assert!(c.failover_usable(mock, "ws://127.0.0.1:8090/v1/live/sessions"), "two local mocks");
        assert!(!c.failover_usable(mock, DEFAULT_LIVE_URL), "no key: OpenAI's live endpoint would refuse");
        c.openai_api_key = Some("sk-x".into());
        assert!(c.failover_usable(DEFAULT_REALTIME_URL, DEFAULT_LIVE_URL));
    }

    #[test]
    fn unsigned_carrier_requests_are_served_only_locally_or_on_purpose() {
        let mut c = Config::defaults();
        assert_eq!(c.unsigned(Provider::Twilio), Unsigned::LocalOnly, "the default public URL is localhost");
        for local in ["http://127.0.0.1:8080", "http://[::1]:8080", "http://app.localhost"] {
            c.public_url = local.into();
            assert_eq!(c.unsigned(Provider::Twilio), Unsigned::LocalOnly, "{local}");
        }
        c.public_url = "https://voice.example.com".into();
        assert_eq!(c.unsigned(Provider::Twilio), Unsigned::Refused);
        assert_eq!(c.unsigned(Provider::Telnyx), Unsigned::Refused);
        c.twilio_auth_token = Some("t".into());
        assert_eq!(c.unsigned(Provider::Twilio), Unsigned::Checked);
        assert_eq!(c.unsigned(Provider::Telnyx), Unsigned::Refused, "each carrier by its own secret");
        c.allow_unsigned = true;
        assert_eq!(c.unsigned(Provider::Telnyx), Unsigned::Allowed);
        assert_eq!(c.unsigned(Provider::Twilio), Unsigned::Checked, "a configured secret is always checked");
        assert!(Unsigned::Allowed.serves_unsigned() && !Unsigned::Refused.serves_unsigned());
    }

    #[test]
    fn public_ws_base_rewrites_the_scheme() {
        let mut c = Config::defaults();
        c.public_url = "https://voice.example.com/".into();
        assert_eq!(c.public_ws_base(), "wss://voice.example.com");
        assert_eq!(c.public_http("/twilio/voice"), "https://voice.example.com/twilio/voice");
    }
}
