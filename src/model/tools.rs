//! The tools a call's model may use, in one registry both protocols render from: Realtime lists
//! them in `session.update`, GPT-Live in its Responses delegation. The core asks the registry
//! what a named call is; only it decides what a call does.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

/// The name of the built-in tool that ends the call.
pub const END_CALL_TOOL: &str = "end_call";
/// The name of the built-in tool through which the AI reports the call's structured outcome
/// (a call with an `outcome_schema` only).
pub const REPORT_OUTCOME_TOOL: &str = "report_outcome";

/// The name of the built-in tool that hands the caller to a human (a call with `transfer_to`).
pub const TRANSFER_TOOL: &str = "transfer_call";

/// The name of the built-in tool that presses keys on the phone (a call with `dtmf_out`).
pub const PRESS_DIGITS_TOOL: &str = "press_digits";

/// Where a call's AI may hand the caller over (`transfer_to` in `POST /v1/calls`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TransferTarget {
    /// E.164 or `sip:…`.
    pub to: String,
    #[serde(default)]
    pub description: String,
    /// How long the human's phone rings before the transfer counts as not answered (default 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// What happens when the human does not answer (default: the caller comes back to the AI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_answer: Option<OnNoAnswer>,
    /// What the caller hears before the hang-up when `on_no_answer` is `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a transfer the human did not answer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNoAnswer {
    /// The caller comes back to the AI, which is told the transfer failed.
    Return,
    /// The caller hears the target's `message`, then the call ends `transfer_failed`.
    Message,
}

/// The human's ring time when a target gives none.
pub const DEFAULT_RING_S: u32 = 25;

impl TransferTarget {
    pub fn new(to: &str, description: &str) -> TransferTarget {
        TransferTarget {
            to: to.into(),
            description: description.into(),
            timeout_s: None,
            on_no_answer: None,
            message: None,
        }
    }

    /// The ring time for the human (`timeout_s`, default [`DEFAULT_RING_S`]).
    pub fn ring_seconds(&self) -> u32 {
        self.timeout_s.unwrap_or(DEFAULT_RING_S)
    }

    /// Whether an unanswered transfer ends the call with the message (else the caller returns).
    pub fn ends_with_message(&self) -> bool {
        self.on_no_answer == Some(OnNoAnswer::Message)
    }
}

/// What a tool call the model made turns out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// `end_call`: the AI says goodbye and hangs up.
    EndCall,
    /// `report_outcome`: its arguments are the call's outcome, once they validate.
    ReportOutcome,
    /// One of the call's own `tools`: POSTed to its `url`, the answer is the function's output.
    User,
    /// `transfer_call`: the AI tells the caller, then the carrier connects them to `to`.
    Transfer,
    /// `press_digits`: keys pressed on the phone (a phone menu on the other end).
    PressDigits,
}

/// One of a call's own tools (`tools` in `POST /v1/calls`), as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserTool {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A JSON Schema object for the arguments.
    pub parameters: Value,
    pub url: String,
    /// How long its answer may take (default [`DEFAULT_TOOL_TIMEOUT_MS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// A tool's `timeout_ms` when it gives none.
pub const DEFAULT_TOOL_TIMEOUT_MS: u64 = 5_000;

/// A call's `outcome_schema`, compiled once: the parameters of its `report_outcome` tool and
/// the check of what the model reports.
#[derive(Clone)]
pub struct ObjectSchema {
    schema: Arc<Value>,
    validator: Arc<jsonschema::Validator>,
}

/// How many of an outcome's faults the model is told (it corrects them and reports again).
const FAULTS_TOLD: usize = 5;
/// The longest fault told: a fault quotes the value at fault, which the model may have made
/// as long as it liked (and which would go back into its context, billed, every time).
const FAULT_CHARS: usize = 200;

impl ObjectSchema {
    /// Compiles `schema`, a JSON Schema for an object: the tool's arguments are the outcome, and
    /// both APIs take only an object as a function's parameters. Remote `$ref`s are not fetched.
    pub fn new(schema: Value) -> Result<ObjectSchema, String> {
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(r#"must be a JSON Schema with "type": "object" (tool arguments are an object)"#.into());
        }
        let validator = jsonschema::validator_for(&schema).map_err(|e| format!("is not a valid JSON Schema: {e}"))?;
        Ok(ObjectSchema { schema: Arc::new(schema), validator: Arc::new(validator) })
    }

    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// The outcome the model reported as `arguments` (JSON text), or what is wrong with it, in
    /// words the model can act on.
    pub fn check(&self, arguments: &str) -> Result<Value, String> {
        let outcome: Value = serde_json::from_str(arguments).map_err(|e| format!("the arguments are not JSON: {e}"))?;
        let faults: Vec<String> = self
            .validator
            .iter_errors(&outcome)
            .take(FAULTS_TOLD)
            .map(|e| {
                let fault = match e.instance_path().as_str() {
                    "" => e.to_string(),
                    path => format!("{path}: {e}"),
                };
                clip(fault, FAULT_CHARS)
            })
            .collect();
        if faults.is_empty() {
            Ok(outcome)
        } else {
            Err(format!("the outcome does not match the call's outcome_schema: {}", faults.join("; ")))
        }
    }
}

/// `text` cut to at most `max` characters, marked when cut.
fn clip(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push_str("… (cut)");
    }
    text
}

impl PartialEq for ObjectSchema {
    fn eq(&self, other: &ObjectSchema) -> bool {
        self.schema == other.schema
    }
}

impl std::fmt::Debug for ObjectSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ObjectSchema").field(&self.schema).finish()
    }
}

/// One function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// A JSON Schema object for the arguments.
    pub parameters: Value,
    pub kind: ToolKind,
    /// Where a user tool's calls go.
    pub url: Option<String>,
    /// How long a user tool's answer may take.
    pub timeout_ms: Option<u64>,
}

/// A call's tools. Shared, not copied: a call's settings are cloned several times (its record,
/// the session in use, a pre-warm), and a schema is a tree of maps (~6 KB a call, heaptrack).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRegistry {
    tools: Arc<[ToolSpec]>,
    outcome: Option<ObjectSchema>,
}

impl Default for ToolRegistry {
    /// The built-in tools every call has (built once).
    fn default() -> ToolRegistry {
        static BUILT_IN: OnceLock<Arc<[ToolSpec]>> = OnceLock::new();
        ToolRegistry { tools: Arc::clone(BUILT_IN.get_or_init(built_in)), outcome: None }
    }
}

fn built_in() -> Arc<[ToolSpec]> {
    Arc::from(vec![ToolSpec {
        name: END_CALL_TOOL.into(),
        description: "End the phone call. Call this once the conversation is finished and you have said goodbye."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "Why the call is ending."}},
            "required": []
        }),
        kind: ToolKind::EndCall,
        url: None,
        timeout_ms: None,
    }])
}

impl ToolRegistry {
    /// These tools and `report_outcome`, whose parameters are `outcome`'s schema.
    pub fn with_outcome(self, outcome: ObjectSchema) -> ToolRegistry {
        let mut tools: Vec<ToolSpec> =
            self.tools.iter().filter(|t| t.kind != ToolKind::ReportOutcome).cloned().collect();
        tools.push(ToolSpec {
            name: REPORT_OUTCOME_TOOL.into(),
            description: "Report the outcome of this call, as soon as it is known (before saying goodbye). \
                          If the answer is an error, correct the outcome and report it again."
                .into(),
            parameters: outcome.schema().clone(),
            kind: ToolKind::ReportOutcome,
            url: None,
            timeout_ms: None,
        });
        ToolRegistry { tools: Arc::from(tools), outcome: Some(outcome) }
    }

    /// These tools and the call's own (`tools`), each POSTed to its `url` when called.
    pub fn with_user_tools(self, user: &[UserTool]) -> ToolRegistry {
        let mut tools: Vec<ToolSpec> = self.tools.iter().filter(|t| t.kind != ToolKind::User).cloned().collect();
        tools.extend(user.iter().map(|t| ToolSpec {
            name: t.name.clone(),
            description: t.description.clone(),
            parameters: t.parameters.clone(),
            kind: ToolKind::User,
            url: Some(t.url.clone()),
            timeout_ms: t.timeout_ms,
        }));
        ToolRegistry { tools: Arc::from(tools), outcome: self.outcome }
    }

    /// These tools and `transfer_call`, whose `to` must be one of `targets`.
    pub fn with_transfer(self, targets: &[TransferTarget]) -> ToolRegistry {
        let mut tools: Vec<ToolSpec> = self.tools.iter().filter(|t| t.kind != ToolKind::Transfer).cloned().collect();
        let listed: Vec<String> = targets
            .iter()
            .map(|t| if t.description.is_empty() { t.to.clone() } else { format!("{} ({})", t.to, t.description) })
            .collect();
        tools.push(ToolSpec {
            name: TRANSFER_TOOL.into(),
            description: format!(
                "Hand the caller over to a person. Tell the caller first, in one short sentence. Where to: {}.",
                listed.join("; ")
            ),
            parameters: json!({
                "type": "object",
                "properties": {"to": {"type": "string", "enum": targets.iter().map(|t| t.to.clone()).collect::<Vec<_>>()}},
                "required": ["to"]
            }),
            kind: ToolKind::Transfer,
            url: None,
            timeout_ms: None,
        });
        ToolRegistry { tools: Arc::from(tools), outcome: self.outcome }
    }

    /// These tools and `press_digits`.
    pub fn with_press_digits(self) -> ToolRegistry {
        let mut tools: Vec<ToolSpec> = self.tools.iter().filter(|t| t.kind != ToolKind::PressDigits).cloned().collect();
        tools.push(ToolSpec {
            name: PRESS_DIGITS_TOOL.into(),
            description: "Press keys on the phone's keypad, to get through a phone menu (\"press 1 for sales\"). \
                          Keys: 0-9, * and #; w waits half a second between keys."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {"digits": {"type": "string", "pattern": "^[0-9*#ABCDwW]{1,32}$",
                                          "description": "The keys in order, like 1 or 1w23#."}},
                "required": ["digits"]
            }),
            kind: ToolKind::PressDigits,
            url: None,
            timeout_ms: None,
        });
        ToolRegistry { tools: Arc::from(tools), outcome: self.outcome }
    }

    /// The `to` of a `transfer_call` the model made with `arguments`, if it is one the call allows.
    pub fn transfer_target(&self, arguments: &str) -> Option<String> {
        let to = serde_json::from_str::<Value>(arguments).ok()?.get("to")?.as_str()?.to_string();
        let spec = self.tools.iter().find(|t| t.kind == ToolKind::Transfer)?;
        spec.parameters["properties"]["to"]["enum"].as_array()?.iter().any(|t| *t == to.as_str()).then_some(to)
    }

    /// How long the call's own tool `name` may take to answer.
    pub fn timeout(&self, name: &str) -> std::time::Duration {
        let ms = self.tools.iter().find(|t| t.name == name).and_then(|t| t.timeout_ms);
        std::time::Duration::from_millis(ms.unwrap_or(DEFAULT_TOOL_TIMEOUT_MS))
    }

    /// Where the call's own tool `name` is POSTed.
    pub fn url(&self, name: &str) -> Option<&str> {
        self.tools.iter().find(|t| t.name == name).and_then(|t| t.url.as_deref())
    }

    /// The call's `outcome_schema`, if it has one.
    pub fn outcome(&self) -> Option<&ObjectSchema> {
        self.outcome.as_ref()
    }

    /// What the model's call of `name` is, if the call has such a tool.
    pub fn kind(&self, name: &str) -> Option<ToolKind> {
        self.tools.iter().find(|t| t.name == name).map(|t| t.kind)
    }

    /// The tools as function definitions (`{"type": "function", name, description,
    /// parameters}`), the shape both Realtime's `session.tools` and the Responses API take.
    pub fn functions(&self) -> Vec<Value> {
        self.tools
            .iter()
            .map(|t| json!({"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_call_is_built_in_and_rendered_as_a_function() {
        let r = ToolRegistry::default();
        assert_eq!(r.kind(END_CALL_TOOL), Some(ToolKind::EndCall));
        assert_eq!(r.kind("transfer"), None);
        let f = r.functions();
        assert_eq!(f[0]["type"], "function");
        assert_eq!(f[0]["name"], END_CALL_TOOL);
        assert_eq!(f[0]["parameters"]["type"], "object");
        assert_eq!(r.kind(REPORT_OUTCOME_TOOL), None, "only with an outcome_schema");
    }

    fn appointment() -> Value {
        json!({
            "type": "object",
            "properties": {
                "confirmed": {"type": "boolean"},
                "new_time": {"type": "string", "format": "date-time"},
                "notes": {"type": "string", "maxLength": 200}
            },
            "required": ["confirmed"],
            "additionalProperties": false
        })
    }

    #[test]
    fn an_outcome_schema_adds_report_outcome_with_the_schema_as_its_parameters() {
        let r = ToolRegistry::default().with_outcome(ObjectSchema::new(appointment()).unwrap());
        assert_eq!(r.kind(REPORT_OUTCOME_TOOL), Some(ToolKind::ReportOutcome));
        assert_eq!(r.kind(END_CALL_TOOL), Some(ToolKind::EndCall), "the built-ins stay");
        let f = r.functions();
        let report = f.iter().find(|f| f["name"] == REPORT_OUTCOME_TOOL).unwrap();
        assert_eq!(report["parameters"], appointment());
        // Settings compare by the schema (a pre-warmed session is reused only for the same one).
        let again = ToolRegistry::default().with_outcome(ObjectSchema::new(appointment()).unwrap());
        assert_eq!(r, again);
        assert_ne!(r, ToolRegistry::default());
        assert_eq!(r.clone().with_outcome(ObjectSchema::new(appointment()).unwrap()).functions().len(), 2);
    }

    #[test]
    fn a_wrong_outcome_is_told_back_cut_short() {
        let s = ObjectSchema::new(appointment()).unwrap();
        let huge = "x".repeat(100_000);
        let faults = s.check(&json!({"confirmed": huge, "notes": huge}).to_string()).unwrap_err();
        assert!(faults.contains("/confirmed") && faults.contains("(cut)"), "{faults}");
        assert!(faults.len() < 1_000, "{} bytes told back", faults.len());
    }

    #[test]
    fn a_reported_outcome_is_checked_against_the_schema() {
        let s = ObjectSchema::new(appointment()).unwrap();
        assert_eq!(
            s.check(r#"{"confirmed": true, "notes": "ok"}"#).unwrap(),
            json!({"confirmed": true, "notes": "ok"})
        );
        let missing = s.check(r#"{"notes": "no answer yet"}"#).unwrap_err();
        assert!(missing.contains("confirmed"), "{missing}");
        let wrong = s.check(r#"{"confirmed": "yes"}"#).unwrap_err();
        assert!(wrong.contains("/confirmed"), "names where: {wrong}");
        let extra = s.check(r#"{"confirmed": false, "mood": "happy"}"#).unwrap_err();
        assert!(extra.contains("mood"), "{extra}");
        assert!(s.check("{not json").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn an_outcome_schema_must_be_an_object_schema_that_compiles() {
        assert!(ObjectSchema::new(json!({"type": "string"})).unwrap_err().contains(r#""type": "object""#));
        assert!(ObjectSchema::new(json!({"properties": {}})).is_err(), "no type");
        let bad = ObjectSchema::new(json!({"type": "object", "properties": {"a": {"type": "nonsense"}}})).unwrap_err();
        assert!(bad.contains("not a valid JSON Schema"), "{bad}");
        // A remote reference is not fetched: it cannot resolve.
        let remote = json!({"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:9/x.json"}}});
        assert!(ObjectSchema::new(remote).is_err());
    }

    #[test]
    fn a_calls_own_tools_are_offered_beside_the_built_ins_with_their_urls() {
        let lookup = UserTool {
            name: "check_calendar".into(),
            description: "Free slots on a day.".into(),
            parameters: json!({"type": "object", "properties": {"day": {"type": "string"}}}),
            url: "https://example.com/tools/calendar".into(),
            timeout_ms: None,
        };
        let r =
            ToolRegistry::default().with_outcome(ObjectSchema::new(appointment()).unwrap()).with_user_tools(&[lookup]);
        assert_eq!(r.kind("check_calendar"), Some(ToolKind::User));
        assert_eq!(r.url("check_calendar"), Some("https://example.com/tools/calendar"));
        assert_eq!((r.kind(END_CALL_TOOL), r.url(END_CALL_TOOL)), (Some(ToolKind::EndCall), None));
        assert_eq!(r.kind(REPORT_OUTCOME_TOOL), Some(ToolKind::ReportOutcome), "kept");
        let names: Vec<Value> = r.functions().iter().map(|f| f["name"].clone()).collect();
        assert_eq!(names, [json!("end_call"), json!("report_outcome"), json!("check_calendar")]);
    }

    #[test]
    fn transfer_call_names_its_targets_and_takes_no_other() {
        let targets =
            [TransferTarget::new("+15550001111", "sales desk"), TransferTarget::new("sip:support@pbx.example.com", "")];
        let r = ToolRegistry::default().with_transfer(&targets);
        assert_eq!(r.kind(TRANSFER_TOOL), Some(ToolKind::Transfer));
        let f = r.functions();
        let spec = f.iter().find(|f| f["name"] == TRANSFER_TOOL).unwrap();
        assert!(spec["description"].as_str().unwrap().contains("+15550001111 (sales desk)"), "{spec}");
        assert_eq!(
            spec["parameters"]["properties"]["to"]["enum"],
            json!(["+15550001111", "sip:support@pbx.example.com"])
        );
        assert_eq!(r.transfer_target(r#"{"to": "+15550001111"}"#).as_deref(), Some("+15550001111"));
        assert_eq!(r.transfer_target(r#"{"to": "+15559999999"}"#), None, "not a target");
        assert_eq!(r.transfer_target("nonsense"), None);
        assert_eq!(ToolRegistry::default().transfer_target(r#"{"to": "+15550001111"}"#), None, "no transfer_to");
    }
}
