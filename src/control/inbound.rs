//! Who serves an inbound call: the agent bound to the called number, unless the business's
//! inbound webhook (`VOXBRIDGE_INBOUND_WEBHOOK_URL`) chooses another, fills the variables, or
//! rejects the call. A slow or failing webhook never holds the caller past its timeout: the
//! number's agent serves, and the call's history says why. Unbound numbers get the server's
//! defaults, as before agents existed.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::AppState;
use super::call_request::{self, Defaults};
use crate::providers::carrier::Provider;
use crate::store::agents::{Agent, AgentUse, CallConfig};

/// How an inbound call is served.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Served {
    /// The business refused the call (its webhook said `"reject": true`).
    pub reject: bool,
    /// The agent's configuration (`None`: the server's defaults).
    pub config: Option<CallConfig>,
    pub agent: Option<AgentUse>,
    /// Where its events go: the agent's `webhook_url`, else `VOXBRIDGE_WEBHOOK_URL`.
    pub webhook_url: Option<String>,
    /// Lines for the call's history (why the webhook was not followed, a variable left empty…).
    pub notes: Vec<String>,
}

/// What the inbound webhook answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Choose {
        agent_id: Option<String>,
        variables: Map<String, Value>,
    },
    Reject,
    /// No usable answer (said why): the number's agent serves.
    Failed(String),
}

/// Reads the webhook's answer: `{"agent_id"?, "variables"?, "reject"?}` (an empty body chooses
/// nothing).
pub fn parse_answer(body: &[u8]) -> Answer {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Answer::Choose { agent_id: None, variables: Map::new() };
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Answer::Failed("the inbound webhook answered something other than a JSON object".into());
    };
    if obj.get("reject") == Some(&Value::Bool(true)) {
        return Answer::Reject;
    }
    let agent_id = match obj.get("agent_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Answer::Failed("the inbound webhook's agent_id is not text".into()),
    };
    let variables = match obj.get("variables") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(v)) if v.values().all(Value::is_string) => v.clone(),
        Some(_) => return Answer::Failed("the inbound webhook's variables are not an object of texts".into()),
    };
    Answer::Choose { agent_id, variables }
}

/// The configuration `agent` gives a call from `from` to `to` with `variables` (over the
/// defaults `from` and `to`); a key a template uses without a value is left empty (the caller
/// is answered whatever the templates say) and noted.
pub fn serve(
    agent: &Agent,
    mut variables: Map<String, Value>,
    from: &str,
    to: &str,
    defaults: &Defaults<'_>,
) -> Served {
    let fields = super::agents::fields(agent);
    for (key, value) in [("from", from), ("to", to)] {
        variables.entry(key).or_insert_with(|| Value::String(value.to_string()));
    }
    let mut notes = Vec::new();
    for field in call_request::TEMPLATES {
        let Some(Value::String(t)) = fields.get(field) else { continue };
        for key in super::template::keys(t).unwrap_or_default() {
            if !variables.contains_key(&key) {
                notes.push(format!("no value for {{{{{key}}}}} in the {field}: left empty"));
                variables.insert(key, Value::String(String::new()));
            }
        }
    }
    let body = json!({"to": "+10000000000", "from": "+10000000000", "variables": variables});
    let request = call_request::with_agent(&body, Some(&fields)).and_then(|b| call_request::parse(&b, defaults));
    let req = match request {
        Ok(r) => r,
        Err(e) => {
            // Checked when the agent was saved: only a server whose rules tightened since fails here.
            notes.push(format!(
                "agent {} is unusable ({}: {}): the server's defaults serve",
                agent.id, e.field, e.problem
            ));
            return Served { notes, ..Served::default() };
        }
    };
    let json_list = |empty: bool, v: String| (!empty).then_some(v);
    Served {
        reject: false,
        config: Some(CallConfig {
            instructions: req.instructions,
            greeting: req.greeting,
            voice: req.voice,
            model: req.model,
            model_api: req.model_api,
            reasoning_effort: req.reasoning_effort,
            outcome_schema: req.outcome_schema.as_ref().map(Value::to_string),
            tools: json_list(req.tools.is_empty(), serde_json::to_string(&req.tools).unwrap_or_default()),
            transfer_to: json_list(
                req.transfer_to.is_empty(),
                serde_json::to_string(&req.transfer_to).unwrap_or_default(),
            ),
            max_duration_s: req.max_duration_s,
            max_cost_usd: req.max_cost_usd,
            analysis: req.analysis.as_ref().map(Value::to_string),
            dtmf_out: req.dtmf_out,
            record: req.record,
        }),
        agent: Some(AgentUse {
            agent_id: agent.id.clone(),
            agent_version: agent.version,
            variables: Value::Object(req.variables).to_string(),
        }),
        webhook_url: req.webhook_url,
        notes,
    }
}

/// The largest answer read from the inbound webhook.
const MAX_ANSWER: usize = 64 * 1024;

/// Asks the inbound webhook (signed as events are), within the configured timeout.
async fn ask(state: &AppState, url: &str, call_id: &str, provider: Provider, from: &str, to: &str) -> Answer {
    let timeout = Duration::from_millis(state.config.inbound_webhook_timeout_ms);
    let guard = crate::webhooks::post::Guard {
        secret: state.config.webhook_secret.clone(),
        allow_private: state.config.webhook_allow_private,
        timeout,
    };
    let body =
        json!({"event": "call.incoming", "call_id": call_id, "from": from, "to": to, "provider": provider.as_str()});
    let asked = async {
        let resp = crate::webhooks::post::post_json(url, body.to_string(), &guard).await.map_err(|e| match e {
            crate::webhooks::post::Failure::Refused(e) | crate::webhooks::post::Failure::Failed(e) => e,
        })?;
        if resp.content_length().is_some_and(|n| n as usize > MAX_ANSWER) {
            return Err("its answer is over 64 KiB".to_string());
        }
        resp.bytes().await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(timeout, asked).await {
        Ok(Ok(bytes)) if bytes.len() <= MAX_ANSWER => parse_answer(&bytes),
        Ok(Ok(_)) => Answer::Failed("the inbound webhook's answer is over 64 KiB".into()),
        Ok(Err(e)) => Answer::Failed(format!("the inbound webhook failed: {e}")),
        Err(_) => Answer::Failed(format!("the inbound webhook did not answer within {} ms", timeout.as_millis())),
    }
}

/// How the inbound call `call_id` from `from` to `to` is served.
pub async fn choose(state: &AppState, call_id: &str, provider: Provider, from: &str, to: &str) -> Served {
    let bound = match state.store.agent_for_number(to, provider.as_str()).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, call_id, "cannot read the number's agent; the server's defaults serve");
            None
        }
    };
    let mut notes = Vec::new();
    let (agent, variables) = match state.config.inbound_webhook_url.as_deref() {
        None => (bound, Map::new()),
        Some(url) => match ask(state, url, call_id, provider, from, to).await {
            Answer::Reject => {
                return Served {
                    reject: true,
                    notes: vec!["rejected by the inbound webhook".into()],
                    ..Served::default()
                };
            }
            Answer::Failed(why) => {
                tracing::warn!(call_id, why, "inbound webhook not followed");
                notes.push(format!("{why}: the number's agent serves"));
                (bound, Map::new())
            }
            Answer::Choose { agent_id: None, variables } => (bound, variables),
            Answer::Choose { agent_id: Some(id), variables } => match state.store.agent(&id).await {
                Ok(Some(chosen)) => {
                    notes.push(format!("agent {id} chosen by the inbound webhook"));
                    (Some(chosen), variables)
                }
                Ok(None) => {
                    notes.push(format!(
                        "the inbound webhook chose agent {id}, which does not exist: the number's agent serves"
                    ));
                    (bound, variables)
                }
                Err(e) => {
                    tracing::warn!(error = %e, call_id, "cannot read the chosen agent");
                    (bound, variables)
                }
            },
        },
    };
    let mut served = match agent {
        Some(agent) => {
            serve(&agent, variables, from, to, &Defaults::from_config(&state.config, jiff::Timestamp::now()))
        }
        None => Served::default(),
    };
    served.webhook_url = served.webhook_url.or_else(|| state.config.webhook_url.clone());
    notes.append(&mut served.notes);
    served.notes = notes;
    served
}

/// Writes `served`'s notes into call `call_id`'s history.
pub async fn note(state: &AppState, call_id: &str, served: &Served) {
    for line in &served.notes {
        state.bridge.note_history(call_id, line).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhooks_answer_chooses_rejects_or_is_set_aside_with_a_reason() {
        assert_eq!(parse_answer(b"{\"reject\": true}"), Answer::Reject);
        assert_eq!(parse_answer(b""), Answer::Choose { agent_id: None, variables: Map::new() });
        let chosen = parse_answer(br#"{"agent_id": "ag_1", "variables": {"first_name": "Ada"}}"#);
        let Answer::Choose { agent_id, variables } = chosen else { panic!("{chosen:?}") };
        assert_eq!(agent_id.as_deref(), Some("ag_1"));
        assert_eq!(variables["first_name"], "Ada");
        assert!(matches!(parse_answer(b"<html>"), Answer::Failed(_)));
        assert!(matches!(parse_answer(br#"{"variables": {"n": 1}}"#), Answer::Failed(_)));
        assert!(matches!(parse_answer(br#"{"agent_id": 5}"#), Answer::Failed(_)));
    }

    #[test]
    fn an_agent_serves_with_its_templates_filled_and_a_missing_value_left_empty_and_noted() {
        let config = json!({"instructions": "Caller {{from}}; name {{first_name}}.", "greeting": "Hi {{first_name}}",
                            "voice": "cedar", "tools": [{"name": "lookup", "url": "https://crm.example/l"}],
                            "max_duration_s": 120, "webhook_url": "https://hooks.example/e"});
        let agent = Agent {
            id: "ag_1".into(),
            name: "desk".into(),
            version: 3,
            config: config.to_string(),
            created_at: 0,
            updated_at: 0,
        };
        let defaults = call_request::test_defaults();
        let vars: Map<String, Value> = json!({"first_name": "Ada"}).as_object().unwrap().clone();
        let s = serve(&agent, vars, "+15551112222", "+15553334444", &defaults);
        let c = s.config.unwrap();
        assert_eq!(c.instructions.as_deref(), Some("Caller +15551112222; name Ada."));
        assert_eq!(c.greeting.as_deref(), Some("Hi Ada"));
        assert_eq!(c.voice.as_deref(), Some("cedar"));
        assert!(c.tools.unwrap().contains("lookup"));
        assert_eq!(c.max_duration_s, Some(120));
        assert_eq!(s.webhook_url.as_deref(), Some("https://hooks.example/e"));
        assert_eq!(s.agent.as_ref().unwrap().agent_version, 3);
        assert!(s.notes.is_empty(), "{:?}", s.notes);
        let s = serve(&agent, Map::new(), "+15551112222", "+15553334444", &defaults);
        assert_eq!(s.config.unwrap().greeting.as_deref(), Some("Hi "));
        assert_eq!(s.notes, ["no value for {{first_name}} in the instructions: left empty"]);
    }
}
