//! What every call shares: process-wide settings (model endpoint and defaults, carriers,
//! tokens, admission, store) and the live calls' mailboxes; how a stream proves its call id.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::admission::Admission;
use super::core::CostCap;
use super::transcript::Transcript;
use crate::lifecycle::status::CallStatus;
use crate::model::realtime::connection::Endpoint;
use crate::model::{ModelApi, ModelConfig};
use crate::providers::StreamStart;
use crate::providers::carrier::{Carriers, Provider};
use crate::providers::stream_token::StreamTokens;
use crate::store::calls::{ProviderEvent, TranscriptLine};
use crate::store::{CallNotice, CallRecords, OutboundCalls, Store};
use crate::telemetry;

/// Waits between tries to store a transcript the database refused (about five minutes in all).
const TRANSCRIPT_RETRIES: [Duration; 7] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(180),
];

/// Process-wide settings and shared state for calls.
pub struct Bridge {
    /// OpenAI Realtime.
    pub endpoint: Endpoint,
    /// GPT-Live.
    pub live_endpoint: Endpoint,
    /// Serve a call with the other API when the chosen one cannot be reached at its start.
    pub model_failover: bool,
    /// How the latest model connects went (readiness).
    pub model_health: super::model_health::ModelHealth,
    /// `VOXBRIDGE_PREWARM`: outbound calls' model sessions open while the phone rings.
    pub prewarm: bool,
    pub prewarms: super::prewarm::Prewarms,
    /// How long a pre-warmed session waits for its stream (the ring timeout and a margin).
    pub prewarm_deadline: Duration,
    /// The defaults of calls that choose nothing (their API, its model, instructions…).
    pub model: ModelConfig,
    pub playout_lead: Duration,
    /// A committed caller turn unanswered this long means the model is lost
    /// (`VOXBRIDGE_MODEL_RESPONSE_TIMEOUT_MS`).
    pub response_timeout: Duration,
    /// A model session this old is replaced at a quiet moment (`VOXBRIDGE_MODEL_SESSION_ROTATE_S`).
    pub session_max: Duration,
    pub start_timeout: Duration,
    /// A live stream silent this long is broken.
    pub carrier_idle_timeout: Duration,
    pub tokens: Arc<StreamTokens>,
    pub admission: Arc<Admission>,
    /// REST clients of the configured carriers (hang-up).
    pub carriers: Carriers,
    pub record_dir: Option<PathBuf>,
    /// Call recordings (`VOXBRIDGE_RECORDINGS`; `None`: off).
    pub recordings: Option<crate::recording::Recorder>,
    pub shutdown: watch::Sender<bool>,
    /// Call records: an originated call's instructions, voice and greeting; transcripts.
    pub store: Option<Store>,
    /// `VOXBRIDGE_MAX_CALL_DURATION_S`: the cap of calls that give none.
    pub max_call_duration: Duration,
    /// How the call's own tools are reached (signed as events are, private targets refused).
    pub tool_guard: crate::webhooks::post::Guard,
    /// The price table (`VOXBRIDGE_PRICES`), for the spend metrics.
    pub prices: crate::pricing::Prices,
    /// Live calls' mailboxes by call id.
    pub live_calls: std::sync::Mutex<std::collections::HashMap<String, mpsc::Sender<CallCommand>>>,
}

/// How long a command for a call live on another instance waits to be taken.
pub const COMMAND_WAIT: Duration = Duration::from_secs(2);
/// How long a call's own tool may take to answer before the model is told it did not.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer of a call's own tool passed to the model.
const MAX_TOOL_ANSWER: usize = 64 * 1024;

/// What the rest of the server may ask of a live call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "command", content = "message", rename_all = "snake_case")]
pub enum CallCommand {
    /// A machine answered: speak this message, then hang up.
    LeaveVoicemail(String),
    /// A machine answered and is still greeting: keep quiet, leave this message at its beep.
    AwaitBeep(String),
    /// The API canceled the call: hang up now.
    HangUp,
    /// The answer of the call's own tool, for the model's function call `call_id`.
    ToolOutput { call_id: String, output: String },
}

/// What a call's record says about how to run it.
#[derive(Debug, Clone)]
pub struct CallSettings {
    pub model: ModelConfig,
    pub max_duration: Duration,
    pub cost_cap: Option<CostCap>,
    /// An outbound call (one this server dialled, which may have a pre-warmed session).
    pub outbound: bool,
    /// Its `metadata` (sent with each call of its own tools).
    pub metadata: serde_json::Value,
    /// The carrier's id of the call on record (dial answer, signed callback or signed voice
    /// webhook): the only one hang-up and transfer act on. `None` when the record has none or
    /// could not be read.
    pub carrier_call_id: Option<String>,
    /// The call is to be recorded (when recordings are on).
    pub record: bool,
    /// Where the AI may hand the caller over, with each target's ring time and fallback.
    pub transfer_to: Vec<crate::model::TransferTarget>,
}

/// The carrier call id a proven stream may act on: the one on record. A `start` naming another
/// is not this call's stream (no signature covers `start`); without a store (nothing is ever on
/// record) the stream's own is all there is.
pub fn carrier_call_id(
    has_store: bool,
    on_record: Option<&str>,
    streamed: &str,
) -> Result<Option<String>, &'static str> {
    match on_record {
        Some(id) if id != streamed => Err("the stream's start names another carrier call"),
        Some(id) => Ok(Some(id.to_string())),
        None if !has_store && crate::providers::rest::is_call_id(streamed) => Ok(Some(streamed.to_string())),
        None => Ok(None),
    }
}

impl Bridge {
    /// Sends `command` to the live call `call_id`; `false` if no such call is live here.
    pub fn command(&self, call_id: &str, command: CallCommand) -> bool {
        let tx = self.live_calls.lock().unwrap_or_else(|e| e.into_inner()).get(call_id).cloned();
        tx.is_some_and(|tx| tx.try_send(command).is_ok())
    }

    /// [`command`](Self::command), waiting for room in the call's mailbox rather than dropping
    /// what must arrive (a tool's answer the model waits for); `false` once the call is over.
    pub async fn command_surely(&self, call_id: &str, command: CallCommand) -> bool {
        let tx = self.live_calls.lock().unwrap_or_else(|e| e.into_inner()).get(call_id).cloned();
        match tx {
            Some(tx) => tx.send(command).await.is_ok(),
            None => false,
        }
    }

    /// [`command`](Self::command) the call wherever it is live: here, or — with a shared store —
    /// on the instance holding its stream, which takes the command from the database within
    /// [`COMMAND_WAIT`]. `false` when no instance took it (the call is not live anywhere).
    pub async fn command_anywhere(&self, call_id: &str, command: CallCommand) -> bool {
        if self.command(call_id, command.clone()) {
            return true;
        }
        let Some(store) = &self.store else { return false };
        let Ok(json) = serde_json::to_string(&command) else { return false };
        let id = match store.send_command(call_id, &json, crate::store::now_ms()).await {
            Ok(Some(id)) => id,
            Ok(None) => return false, // no other instance can hold it
            Err(e) => {
                tracing::warn!(call_id, error = %e, "cannot pass the command to the instance holding the call");
                return false;
            }
        };
        let deadline = tokio::time::Instant::now() + COMMAND_WAIT;
        while tokio::time::Instant::now() < deadline {
            // The holder learns of it by NOTIFY; this only waits for its answer (the row gone).
            tokio::time::sleep(Duration::from_millis(25)).await;
            if !store.command_waiting(id).await.unwrap_or(true) {
                return true;
            }
        }
        // Nobody took it: withdrawn, unless taken in the meantime.
        !store.withdraw_command(id).await.unwrap_or(false)
    }

    /// What another instance announced about a call: a command for it (taken if it is live
    /// here), or that its pre-warmed session is not needed (closed if it is held here).
    pub fn on_notice(self: &Arc<Self>, notice: CallNotice) {
        match notice {
            CallNotice::Command(call_id) => {
                let bridge = Arc::clone(self);
                tokio::spawn(async move { bridge.take_remote_commands(&call_id).await });
            }
            CallNotice::PrewarmUnneeded(call_id) => {
                if self.prewarms.cancel(&call_id) {
                    info!(
                        call_id,
                        "pre-warmed session closed: its attempt ended, or its stream started, on another instance"
                    );
                }
            }
        }
    }

    /// `call_id`'s pre-warmed session is not needed (its attempt ended, or its stream started
    /// without it): closed now if this instance holds it; otherwise, with a shared store, every
    /// instance is told (in the background), and the one holding it closes it. Missed (the
    /// listener reconnecting), it closes at its deadline.
    pub fn release_prewarm(self: &Arc<Self>, call_id: &str) {
        if self.prewarms.cancel(call_id) || !self.prewarm {
            return;
        }
        let Some(store) = self.store.clone() else { return };
        let call_id = call_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = store.prewarm_unneeded(&call_id).await {
                warn!(call_id, error = %e, "cannot tell the other instances their pre-warmed session is not needed");
            }
        });
    }

    /// Another instance left commands for `call_id`: if it is live here, takes and runs them.
    pub async fn take_remote_commands(&self, call_id: &str) {
        let live_here = self.live_calls.lock().unwrap_or_else(|e| e.into_inner()).contains_key(call_id);
        let Some(store) = &self.store else { return };
        if !live_here {
            return;
        }
        match store.take_commands(call_id).await {
            Ok(commands) => {
                for json in commands {
                    match serde_json::from_str::<CallCommand>(&json) {
                        Ok(command) => {
                            tracing::info!(call_id, ?command, "command from another instance");
                            self.command(call_id, command);
                        }
                        Err(e) => tracing::warn!(call_id, error = %e, "unreadable command from another instance"),
                    }
                }
            }
            Err(e) => tracing::warn!(call_id, error = %e, "cannot take the call's commands"),
        }
    }

    /// The carrier accepted the dial of `call_id`: its model session opens now (in the
    /// background), with the call's settings, for the audio format its stream will have.
    pub fn prewarm_call(self: &Arc<Self>, call_id: &str, provider: Provider) {
        if !self.prewarm {
            return;
        }
        // Reserved now, before the settings are read: a stream arriving meanwhile waits for it.
        let takes = self.prewarms.reserve(call_id);
        let (bridge, call_id) = (Arc::clone(self), call_id.to_string());
        tokio::spawn(async move {
            let mut config = bridge.call_settings(&call_id, provider).await.model;
            config.audio = config.audio.for_carrier(bridge.carriers.stream_format(provider));
            let endpoint = bridge.endpoint_of(&config);
            let (model, unused_by) = (config.model.clone(), Arc::clone(&bridge));
            let unused_call = call_id.clone();
            let unused: super::prewarm::OnUnused = Box::new(move |usage| {
                // Billed although nobody heard it: the call's usage says so.
                tokio::spawn(async move { unused_by.save_usage(&unused_call, &model, &usage).await });
            });
            bridge.prewarms.start(&call_id, takes, config, endpoint, bridge.prewarm_deadline, unused);
        });
    }

    /// Where `api` is reached.
    pub fn endpoint_for(&self, api: ModelApi) -> &Endpoint {
        match api {
            ModelApi::Realtime => &self.endpoint,
            ModelApi::Live => &self.live_endpoint,
        }
    }

    /// Where `config`'s session is opened: its API's endpoint, with its model.
    pub fn endpoint_of(&self, config: &ModelConfig) -> Endpoint {
        Endpoint { model: config.model.clone(), ..self.endpoint_for(config.api).clone() }
    }

    /// `config` for the other API (failover): its default model, the rest unchanged.
    pub fn failover_config(&self, config: &ModelConfig) -> ModelConfig {
        let api = config.api.other();
        ModelConfig { api, model: self.endpoint_for(api).model.clone(), ..config.clone() }
    }

    /// Call `call_id`'s recording was written (or could not be): on record before the call's end
    /// is, so `call.completed` names it; an upload still to do wakes the recordings worker.
    pub async fn recording_written(&self, call_id: &str, written: Result<crate::recording::spool::Finished, String>) {
        let (Some(store), Some(recorder)) = (&self.store, &self.recordings) else { return };
        let now = crate::store::now_ms();
        let noted = match written {
            Ok(done) => {
                let stored = recorder.storage.is_local();
                let noted = store.recording_finished(call_id, done.bytes, stored, now).await;
                if !stored {
                    recorder.wake.notify_one();
                }
                noted
            }
            Err(e) => {
                warn!(call_id, error = %e, "the call's recording could not be written");
                store.recording_failed(call_id, &e).await
            }
        };
        if let Err(e) = noted {
            warn!(error = %e, call_id, "cannot note the call's recording");
        }
    }

    /// What was said on the call's earlier streams (a caller back from a transfer nobody
    /// answered), and how long ago the call was answered (where this stream's lines follow).
    pub async fn earlier_conversation(&self, call_id: &str) -> (super::transcript::Transcript, std::time::Duration) {
        let mut transcript = super::transcript::Transcript::default();
        let Some(store) = &self.store else { return (transcript, std::time::Duration::ZERO) };
        let lines = store.transcript(call_id).await.unwrap_or_else(|e| {
            warn!(error = %e, call_id, "cannot read the earlier conversation; the AI starts without it");
            Vec::new()
        });
        for l in &lines {
            let speaker = if l.speaker == "caller" {
                super::transcript::Speaker::Caller
            } else {
                super::transcript::Speaker::Assistant
            };
            let at = std::time::Duration::from_millis(l.at_ms.max(0) as u64);
            transcript.push(speaker, &l.text, at, l.heard_ms.map(|h| h.max(0) as u64));
        }
        let answered = store.call_view(call_id).await.ok().flatten().and_then(|v| v.answered_at);
        let since = answered.map_or(0, |a| (crate::store::now_ms() - a).max(0) as u64);
        let last = lines.last().map_or(0, |l| l.at_ms.max(0) as u64 + 1);
        (transcript, std::time::Duration::from_millis(since.max(last)))
    }

    /// Writes a note into the call's history (with its current status).
    pub async fn note_history(&self, call_id: &str, detail: &str) {
        let Some(store) = &self.store else { return };
        if let Err(e) = store.note_history(call_id, detail, crate::store::now_ms()).await {
            warn!(error = %e, call_id, "cannot write to the call's history");
        }
    }

    /// A call's settings from its record, read once when its stream starts: the model
    /// settings (an originated call's instructions, voice and greeting over the defaults) and
    /// its caps (duration: its own `max_duration_s`, else the server's; spending: its
    /// `max_cost_usd`, metered from what earlier attempts and sessions spent).
    pub async fn call_settings(&self, call_id: &str, carrier: Provider) -> CallSettings {
        let mut settings = CallSettings {
            model: self.model.clone(),
            max_duration: self.max_call_duration,
            cost_cap: None,
            outbound: false,
            metadata: serde_json::json!({}),
            carrier_call_id: None,
            record: false,
            transfer_to: Vec::new(),
        };
        let Some(store) = &self.store else { return settings };
        let call = match store.call_view(call_id).await {
            Ok(Some(call)) => call,
            Ok(None) => return settings,
            Err(e) => {
                warn!(error = %e, call_id, "cannot read the call record; using the default settings");
                return settings;
            }
        };
        settings.outbound = call.direction == "outbound";
        settings.record = call.record;
        settings.carrier_call_id = call.provider_call_id.clone();
        let model = &mut settings.model;
        if let Some(i) = call.instructions.clone() {
            model.instructions = i;
        }
        if let Some(v) = call.voice.clone() {
            model.voice = v;
        }
        if call.greeting.is_some() {
            model.greeting = call.greeting.clone();
        }
        if let Some(api) = call.model_api.as_deref().and_then(ModelApi::parse)
            && api != model.api
        {
            model.api = api;
            model.model = self.endpoint_for(api).model.clone();
        }
        if let Some(m) = call.model.clone() {
            model.model = m;
        }
        model.reasoning_effort = call.reasoning_effort.clone();
        if let Some(text) = call.transfer_to.as_deref() {
            // Checked when the call was created, likewise.
            match serde_json::from_str::<Vec<crate::model::TransferTarget>>(text) {
                Ok(targets) if !targets.is_empty() => {
                    model.tools = model.tools.clone().with_transfer(&targets);
                    settings.transfer_to = targets;
                }
                Ok(_) => {}
                Err(e) => warn!(call_id, error = %e, "the call's transfer_to is unusable; no transfer_call"),
            }
        }
        if call.dtmf_out {
            model.tools = model.tools.clone().with_press_digits();
        }
        if let Some(text) = call.tools.as_deref() {
            // Checked when the call was created, likewise.
            match serde_json::from_str::<Vec<crate::model::UserTool>>(text) {
                Ok(tools) => {
                    model.tools = model.tools.clone().with_user_tools(&tools);
                    // Sent with each call of them (and used for nothing else).
                    settings.metadata = serde_json::from_str(&call.metadata).unwrap_or_else(|_| serde_json::json!({}));
                }
                Err(e) => warn!(call_id, error = %e, "the call's tools are unusable; none offered"),
            }
        }
        if let Some(text) = call.outcome_schema.as_deref() {
            // Checked when the call was created: only a record edited by hand fails here.
            match serde_json::from_str(text).map_err(|e| e.to_string()).and_then(crate::model::ObjectSchema::new) {
                Ok(schema) => model.tools = model.tools.clone().with_outcome(schema),
                Err(e) => warn!(call_id, error = %e, "the call's outcome_schema is unusable; no report_outcome tool"),
            }
        }
        if let Some(s) = call.max_duration_s {
            settings.max_duration = Duration::from_secs(s.max(1) as u64);
        }
        settings.cost_cap = call.max_cost_usd.map(|max_usd| {
            let before = call.model.as_deref().and_then(|m| self.prices.model_usd(m, &call.usage)).unwrap_or(0.0);
            CostCap { max_usd, meter: self.prices.meter(&settings.model.model, carrier.as_str(), before) }
        });
        settings
    }

    /// The stream's call id, once it is proven: by the upgrade's token (Telnyx), or by the
    /// one-time token minted for that call that `start` must carry (Twilio) — always, signed or
    /// not, so naming another call's id gets nothing of it.
    pub async fn stream_call_id(
        &self,
        start: &StreamStart,
        authorized: Option<String>,
    ) -> Result<String, &'static str> {
        if let Some(id) = authorized {
            // A `client_state` naming another call means the stream is not the one we set up.
            let claimed =
                start.params.get("client_state").and_then(|cs| crate::providers::telnyx::rest::call_id_of(cs));
            return match claimed {
                Some(other) if other != id => Err("the stream's client_state names another call"),
                _ => Ok(id),
            };
        }
        let call_id = start.params.get("call_id").map(String::as_str).unwrap_or_default();
        let token = start.params.get("token").map(String::as_str).unwrap_or_default();
        if call_id.is_empty() || !self.redeem_token(token, call_id).await {
            return Err("stream token missing, reused or wrong");
        }
        Ok(call_id.to_string())
    }

    /// Uses up a stream token for `call_id`: valid, and never used before — in this process,
    /// and with a shared store on any instance (its first sighting is recorded there).
    pub async fn redeem_token(&self, token: &str, call_id: &str) -> bool {
        let now = crate::store::now_ms();
        let Some(id) = self.tokens.consume(token, call_id, now) else {
            return false;
        };
        match &self.store {
            Some(store) if store.shared() => match store.first_sighting("stream_token", &id.key(), now).await {
                Ok(first) => first,
                Err(e) => {
                    tracing::warn!(call_id, error = %e, "cannot record the stream token's use; refusing the stream");
                    false
                }
            },
            _ => true,
        }
    }

    /// Whether `token` is valid for `call_id` and not spent — here, nor (with a shared store) on
    /// any instance. A read: it spends nothing (a stream worth steering elsewhere is spent there).
    pub async fn token_unspent(&self, token: &str, call_id: &str) -> bool {
        let now = crate::store::now_ms();
        let Some(id) = self.tokens.check(token, call_id, now) else { return false };
        if self.tokens.is_used(id, now) {
            return false;
        }
        match &self.store {
            Some(store) if store.shared() => matches!(store.sighted("stream_token", &id.key()).await, Ok(false)),
            _ => true,
        }
    }

    /// Hangs up call `call_id` through its carrier when the carrier's call id is on record.
    pub async fn hang_up_call(&self, provider: Provider, call_id: &str) {
        let Some(store) = &self.store else { return };
        let carrier_call_id = store.call_view(call_id).await.ok().flatten().and_then(|v| v.provider_call_id);
        if let Some(id) = carrier_call_id
            && self.carriers.is_configured(provider)
        {
            self.carriers.hang_up_soon(provider, &id);
        }
    }

    /// Where the carrier reports no status for inbound calls (Twilio: the number's settings are
    /// the user's), the stream's start and end are the call's status — the TwiML hangs up once
    /// the stream closes. Other calls hear from their carrier.
    pub async fn stream_status(&self, provider: Provider, call_id: &str, carrier_call_id: &str, status: CallStatus) {
        let Some(store) = &self.store else { return };
        if !provider.inbound_status_from_stream() {
            return;
        }
        match store.call_view(call_id).await {
            Ok(Some(v)) if v.direction == "inbound" => {}
            _ => return,
        }
        let event_id = format!("stream:{call_id}:{status}");
        let ev = ProviderEvent {
            provider: provider.as_str(),
            event_id: &event_id,
            call_id,
            provider_call_id: carrier_call_id,
            attempt: None,
            status,
            detail: Some("media stream"),
            carrier_seconds: None,
        };
        if let Err(e) = store.apply_provider_event(&ev, 0, crate::store::now_ms()).await {
            warn!(error = %e, %status, "cannot record the inbound call's status");
        }
    }

    /// Records why the bridge ended this attempt's stream, before the carrier reports the end.
    pub async fn note_stream_end(&self, call_id: &str, reason: &super::end_reason::EndReason) {
        let Some(store) = &self.store else { return };
        if let Err(e) = store.note_stream_end(call_id, reason.code(), crate::store::now_ms()).await {
            warn!(error = %e, call_id, "cannot record why the stream ended");
        }
    }

    /// Calls the call's own tool `name` at `url` (a signed POST of `{"call_id", "tool",
    /// "arguments", "metadata"}`, as events are signed); what goes back to the model: the JSON
    /// answer, or `{"error": …}` (timeout, refused target, non-2xx, not JSON, too large).
    pub async fn call_user_tool(
        &self,
        call_id: &str,
        metadata: &serde_json::Value,
        name: &str,
        arguments: &str,
        url: &str,
        timeout: Duration,
    ) -> String {
        // Arguments the model sent that are not JSON are passed on as text.
        let arguments: serde_json::Value =
            serde_json::from_str(arguments).unwrap_or_else(|_| serde_json::Value::String(arguments.to_string()));
        let body = serde_json::json!({"call_id": call_id, "tool": name, "arguments": arguments, "metadata": metadata});
        let guard = crate::webhooks::post::Guard { timeout, ..self.tool_guard.clone() };
        // The whole exchange, the answer's body included, within the tool's time.
        let asked = async {
            match crate::webhooks::post::post_json(url, body.to_string(), &guard).await {
                Ok(resp) => resp.bytes().await.map_err(|e| e.to_string()),
                Err(crate::webhooks::post::Failure::Refused(e) | crate::webhooks::post::Failure::Failed(e)) => Err(e),
            }
        };
        let answer = tokio::time::timeout(timeout, asked)
            .await
            .unwrap_or_else(|_| Err(format!("the tool did not answer within {} ms", timeout.as_millis())));
        let output = tool_output(name, answer);
        telemetry::tool_called(if output.is_ok() { "ok" } else { "error" });
        output.unwrap_or_else(|error| error)
    }

    /// Has the carrier ring `target` and hand the caller on `carrier_call_id` over when the human
    /// answers (shown the call's own number); `true` when the carrier took the request. Whether
    /// the human answered comes later, signed (`control::transfer`).
    pub async fn transfer(
        &self,
        provider: Provider,
        carrier_call_id: &str,
        call_id: &str,
        target: &crate::model::TransferTarget,
    ) -> bool {
        let ours = match &self.store {
            Some(store) => match store.call_view(call_id).await {
                Ok(Some(v)) if v.direction == "inbound" => Some(v.to_number),
                Ok(Some(v)) => v.from_number,
                _ => None,
            },
            None => None,
        };
        let (to, ring) = (target.to.as_str(), target.ring_seconds());
        let asked = self.carriers.transfer(provider, carrier_call_id, call_id, to, ring, ours.as_deref()).await;
        if let Err(e) = asked {
            warn!(error = %e, call_id, to, "the carrier refused the transfer");
            self.note_history(call_id, &format!("transfer to {to} refused by the carrier: {e}")).await;
            return false;
        }
        self.note_history(call_id, &format!("transferring to {to} (ringing up to {ring} s)")).await;
        true
    }

    /// Stores the outcome the AI reported for the call.
    pub async fn save_outcome(&self, call_id: &str, outcome: &serde_json::Value) {
        let Some(store) = &self.store else { return };
        if let Err(e) = store.save_outcome(call_id, &outcome.to_string()).await {
            warn!(error = %e, call_id, "cannot record the call's outcome");
        }
    }

    /// Adds a finished stream's model usage to its call, and to the spend metrics.
    pub async fn save_usage(&self, call_id: &str, model: &str, usage: &crate::model::Usage) {
        if usage.is_zero() {
            return;
        }
        telemetry::model_usage(model, usage, self.prices.model_usd(model, usage));
        let Some(store) = &self.store else { return };
        if let Err(e) = store.add_usage(call_id, model, usage).await {
            warn!(error = %e, call_id, "cannot record the call's model usage");
        }
    }

    /// Stores a finished call's transcript (and writes it next to the recording, if any).
    pub async fn save_transcript(&self, call_id: &str, transcript: &Transcript) {
        if let Some(store) = &self.store {
            let lines: Vec<TranscriptLine> = transcript
                .entries
                .iter()
                .map(|e| TranscriptLine {
                    speaker: format!("{:?}", e.speaker).to_lowercase(),
                    text: e.text.clone(),
                    at_ms: e.at_ms as i64,
                    heard_ms: e.heard_ms.map(|h| h as i64),
                })
                .collect();
            if let Err(e) = store.save_transcript(call_id, &lines).await {
                // A full disk clears when space returns: keep the transcript and try again.
                warn!(error = %e, "cannot store the transcript yet; retrying in the background");
                let (store, call_id) = (store.clone(), call_id.to_string());
                tokio::spawn(async move {
                    for wait in TRANSCRIPT_RETRIES {
                        tokio::time::sleep(wait).await;
                        match store.save_transcript(&call_id, &lines).await {
                            Ok(()) => {
                                info!(call_id, "transcript stored after a retry");
                                return;
                            }
                            Err(e) => warn!(call_id, error = %e, "cannot store the transcript yet"),
                        }
                    }
                    telemetry::store_write_failed("transcript_lost");
                    tracing::error!(
                        call_id,
                        lines = lines.len(),
                        "transcript LOST: the database refused it for 5 minutes"
                    );
                });
            }
        }
        if let Some(dir) = &self.record_dir {
            let path = dir.join(format!("{call_id}.transcript.json"));
            if let Err(e) = std::fs::write(&path, transcript.to_json()) {
                warn!(error = %e, "cannot write the transcript");
            }
        }
    }
}

/// What the model gets for a call of the call's own tool `name` that answered `answer`: its JSON,
/// or (`Err`) an `{"error": …}` it can read.
fn tool_output(name: &str, answer: Result<bytes::Bytes, String>) -> Result<String, String> {
    let error = |e: String| Err(serde_json::json!({ "error": format!("the tool {name} failed: {e}") }).to_string());
    match answer {
        Err(e) => error(e),
        Ok(body) if body.len() > MAX_TOOL_ANSWER => error(format!("its answer is larger than {MAX_TOOL_ANSWER} bytes")),
        Ok(body) => match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(json) => Ok(json.to_string()),
            Err(_) => error("its answer is not JSON".into()),
        },
    }
}

#[cfg(test)]
mod tool_tests {
    use super::*;

    #[test]
    fn a_tools_answer_goes_to_the_model_as_json_or_as_an_error_it_can_read() {
        let ok = tool_output("check_calendar", Ok(bytes::Bytes::from_static(br#"{"slots": ["Tue 15:00"]}"#)));
        assert_eq!(ok.as_deref(), Ok(r#"{"slots":["Tue 15:00"]}"#));
        let error = |answer| serde_json::from_str::<serde_json::Value>(&tool_output("t", answer).unwrap_err()).unwrap();
        let failed: serde_json::Value = serde_json::from_str(
            &tool_output("check_calendar", Err("answered 500 Internal Server Error".into())).unwrap_err(),
        )
        .unwrap();
        assert_eq!(failed["error"], "the tool check_calendar failed: answered 500 Internal Server Error");
        assert!(error(Ok(bytes::Bytes::from_static(b"<html>")))["error"].as_str().unwrap().contains("not JSON"));
        let big = bytes::Bytes::from(format!("\"{}\"", "x".repeat(MAX_TOOL_ANSWER)));
        assert!(error(Ok(big))["error"].as_str().unwrap().contains("larger than"));
    }
}
