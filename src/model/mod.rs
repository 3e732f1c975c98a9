//! The model seam, the twin of the carrier seam (`providers`): a call's core speaks neutral
//! [`ModelCommand`]s and hears neutral [`ModelEvent`]s; a [`ModelProtocol`] turns them into one
//! API's frames and back, sans-IO. Two implementations: OpenAI Realtime ([`realtime`]:
//! turn-based, the bridge cancels and truncates) and GPT-Live ([`live`]: full duplex, the model
//! decides when to yield). Tools come from one [`tools::ToolRegistry`] both render.

pub mod audio;
pub mod live;
pub mod realtime;
pub mod tools;
pub mod usage;

pub use audio::ModelAudio;
pub use tools::{
    END_CALL_TOOL, ObjectSchema, OnNoAnswer, PRESS_DIGITS_TOOL, REPORT_OUTCOME_TOOL, TRANSFER_TOOL, ToolKind,
    ToolRegistry, TransferTarget, UserTool,
};
pub use usage::Usage;

/// Which OpenAI speech-to-speech API serves a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelApi {
    /// `/v1/realtime`: turn-based; barge-in cancels and truncates.
    #[default]
    Realtime,
    /// `/v1/live/sessions` (GPT-Live): full duplex, billed per minute.
    Live,
}

impl ModelApi {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelApi::Realtime => "realtime",
            ModelApi::Live => "live",
        }
    }

    pub fn parse(s: &str) -> Option<ModelApi> {
        match s {
            "realtime" => Some(ModelApi::Realtime),
            "live" => Some(ModelApi::Live),
            _ => None,
        }
    }

    /// The API a call fails over to.
    pub fn other(self) -> ModelApi {
        match self {
            ModelApi::Realtime => ModelApi::Live,
            ModelApi::Live => ModelApi::Realtime,
        }
    }
}

/// Everything the model needs to know about one call.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub api: ModelApi,
    /// The chosen API's model (`gpt-realtime…` or `gpt-live-…`).
    pub model: String,
    pub instructions: String,
    pub voice: String,
    /// When set, the AI speaks first with this greeting.
    pub greeting: Option<String>,
    pub audio: ModelAudio,
    /// Input transcription model (`None` turns caller transcripts off; Realtime only).
    pub transcription_model: Option<String>,
    pub vad_threshold: f32,
    pub vad_silence_ms: u32,
    pub vad_prefix_ms: u32,
    /// `reasoning.effort`: Realtime's `session.reasoning` where the model takes one, GPT-Live's
    /// Responses backend's otherwise.
    pub reasoning_effort: Option<String>,
    /// GPT-Live's Responses backend model (it runs the tools).
    pub backend_model: String,
    pub tools: ToolRegistry,
}

/// A line of the conversation so far, for a session that replaces a lost (or failed) one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryLine<'a> {
    pub from_caller: bool,
    pub text: &'a str,
}

/// What the call asks of its model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelCommand<'a> {
    /// Opens the session with the call's configuration and, for a replacement session, the
    /// conversation so far.
    Start { history: &'a [HistoryLine<'a>] },
    /// Caller audio in the model's format.
    Audio(&'a [u8]),
    /// Speak first, with this greeting.
    Greet(&'a str),
    /// A keypad press.
    Dtmf(char),
    /// Context for the model only ("wrap up now").
    Note(&'a str),
    /// Speak now, optionally following these instructions.
    Respond(Option<&'a str>),
    /// Stop the answer being generated (a protocol where the model decides ignores it).
    Cancel,
    /// The caller heard `heard_ms` of this audio segment and no more (likewise).
    TruncateAtHeard { item_id: &'a str, heard_ms: u64 },
    /// A tool call's result.
    ToolResult { call_id: &'a str, output: &'a str },
    /// The call is over: end the session (where the final bill comes in answer).
    Close,
}

/// A model error and whether the call can go on.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelError {
    pub fatal: bool,
    pub kind: String,
    pub code: String,
    pub message: String,
}

/// A function call the model made, delivered when its response is done.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub call_id: String,
    pub name: String,
    pub arguments: String,
}

/// What the model said, neutrally. Ids are the model's: a response (a turn of speech) and an
/// item (a segment of it the caller hears, the unit of truncation).
#[derive(Debug, PartialEq)]
pub enum ModelEvent<'a> {
    /// The session is configured: audio and commands may flow.
    Started,
    /// The model heard the caller begin to speak (turn-based barge-in).
    SpeechStarted,
    /// The caller's turn is committed: a response is due (the response watchdog starts).
    TurnEnded,
    ResponseCreated {
        response_id: &'a str,
    },
    AudioDelta {
        response_id: &'a str,
        item_id: &'a str,
        audio: &'a [u8],
        /// How long the model's output has been quiet at the end of this audio (a full-duplex
        /// model yields this way: it goes quiet while the caller talks).
        quiet_ms: u32,
    },
    AudioDone {
        response_id: &'a str,
    },
    /// A whole assistant segment's words.
    AssistantTranscript {
        item_id: &'a str,
        text: &'a str,
    },
    /// A whole caller utterance's words.
    CallerTranscript {
        text: &'a str,
    },
    /// Words as they come (GPT-Live): appended to the speaker's current line.
    TranscriptDelta {
        from_caller: bool,
        text: &'a str,
    },
    ResponseDone {
        response_id: &'a str,
        status: &'a str,
        tool_calls: Vec<ToolCall>,
        /// What this response was billed (zero when the model reported none).
        usage: Usage,
    },
    /// Billing that belongs to no response (GPT-Live's seconds).
    Usage(Usage),
    Error(ModelError),
    /// Parsed but not acted on.
    Other,
    /// Not JSON or not an event of the protocol.
    Malformed,
}

impl ModelEvent<'_> {
    /// What the event says was billed, if anything (a response's usage, or GPT-Live's seconds).
    pub fn billed(&self) -> Option<Usage> {
        match self {
            ModelEvent::Usage(u) | ModelEvent::ResponseDone { usage: u, .. } => Some(*u),
            _ => None,
        }
    }
}

/// How long an ended session waits for the model to confirm the close (and send its final bill).
pub const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// One API's side of a call, sans-IO: commands to frames, frames to events.
pub trait ModelProtocol: Send {
    fn api(&self) -> ModelApi;

    /// The session's settings.
    fn config(&self) -> &ModelConfig;

    /// Encodes `cmd` as zero or more text frames.
    fn encode(&mut self, cmd: ModelCommand<'_>, out: &mut dyn FnMut(String));

    /// Parses one text frame.
    fn receive<'s>(&'s mut self, text: &'s str) -> ModelEvent<'s>;

    /// True once the session may take audio and commands (Realtime: at once; GPT-Live: after
    /// `session.started`).
    fn ready(&self) -> bool;

    /// The response being generated, if the protocol has responses to cancel.
    fn active_response(&self) -> Option<&str>;

    /// True when the model decides itself when to stop talking: no cancel, no truncation; the
    /// bridge stops local playout when it yields.
    fn full_duplex(&self) -> bool;

    /// True once the model confirmed the end of the session (GPT-Live `session.closed`).
    fn is_closed(&self) -> bool {
        false
    }
}

/// The protocol for `config.api`.
pub fn open(config: ModelConfig) -> Box<dyn ModelProtocol> {
    match config.api {
        ModelApi::Realtime => Box::new(realtime::RealtimeSession::new(config)),
        ModelApi::Live => Box::new(live::LiveSession::new(config)),
    }
}

impl ModelConfig {
    /// A configuration with the server's built-in defaults for everything but the API, model
    /// and audio format (what the config and each call's record override).
    pub fn defaults(api: ModelApi, model: &str, audio: ModelAudio) -> ModelConfig {
        ModelConfig {
            api,
            model: model.to_string(),
            instructions: "You are a helpful, concise voice assistant on a phone call.".into(),
            voice: "marin".into(),
            greeting: None,
            audio,
            transcription_model: Some("gpt-4o-mini-transcribe".into()),
            vad_threshold: 0.5,
            vad_silence_ms: 500,
            vad_prefix_ms: 300,
            reasoning_effort: None,
            backend_model: DEFAULT_LIVE_BACKEND_MODEL.into(),
            tools: ToolRegistry::default(),
        }
    }
}

/// GPT-Live's default Responses backend (`VOXBRIDGE_LIVE_BACKEND_MODEL`).
pub const DEFAULT_LIVE_BACKEND_MODEL: &str = "gpt-5-mini";
