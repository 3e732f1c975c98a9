//! `POST /v1/agents` and `PATCH /v1/agents/{id}` bodies, validated (pure): an agent's call
//! fields pass the very checks a call's do (`call_request::parse` on them), its templates parse,
//! and every problem names its field.

use serde_json::{Map, Value};

use super::call_request::{self, Defaults, FieldError};

/// What an agent may set: its name, and the call fields a business configures once.
pub const FIELDS: &[&str] = &[
    "name",
    "instructions",
    "greeting",
    "voice",
    "model",
    "model_api",
    "reasoning_effort",
    "tools",
    "transfer_to",
    "outcome_schema",
    "analysis",
    "record",
    "max_duration_s",
    "max_cost_usd",
    "call_window",
    "webhook_url",
    "machine_detection",
    "voicemail_message",
    "dtmf_out",
];

/// A valid agent: its name and its call fields (stored as given, `null`s left out).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentBody {
    pub name: String,
    pub config: Map<String, Value>,
}

/// A new agent.
pub fn parse(body: &Value, defaults: &Defaults<'_>) -> Result<AgentBody, FieldError> {
    let Some(obj) = body.as_object() else { return Err(invalid("body", "must be a JSON object")) };
    let name = name(obj.get("name"))?.ok_or_else(|| invalid("name", "is required"))?;
    let mut config = obj.clone();
    config.remove("name");
    check(name, config, defaults)
}

/// `current` changed by a `PATCH` body: the fields it gives replace the agent's, a `null` removes
/// one (the call's or the server's default applies again); the result is checked whole.
pub fn patch(current: &AgentBody, body: &Value, defaults: &Defaults<'_>) -> Result<AgentBody, FieldError> {
    let Some(obj) = body.as_object() else { return Err(invalid("body", "must be a JSON object")) };
    if obj.get("name").is_some_and(Value::is_null) {
        return Err(invalid("name", "cannot be null"));
    }
    let name = name(obj.get("name"))?.unwrap_or_else(|| current.name.clone());
    let mut config = current.config.clone();
    for (k, v) in obj.iter().filter(|(k, _)| *k != "name") {
        if v.is_null() {
            config.remove(k);
        } else {
            config.insert(k.clone(), v.clone());
        }
    }
    check(name, config, defaults)
}

fn invalid(field: &str, problem: &str) -> FieldError {
    FieldError { field: field.to_string(), problem: problem.to_string() }
}

fn name(v: Option<&Value>) -> Result<Option<String>, FieldError> {
    match v {
        None => Ok(None),
        Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 100 => Ok(Some(n.clone())),
        Some(_) => Err(invalid("name", "must be text of 1 to 100 characters")),
    }
}

/// Checks an agent's fields with the rules of a call's.
fn check(name: String, mut config: Map<String, Value>, defaults: &Defaults<'_>) -> Result<AgentBody, FieldError> {
    config.retain(|_, v| !v.is_null());
    if let Some(unknown) = config.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(invalid(unknown, "unknown field"));
    }
    for field in call_request::TEMPLATES {
        if let Some(Value::String(t)) = config.get(field) {
            super::template::keys(t).map_err(|e| invalid(field, &e))?;
        }
    }
    // The call fields, as a call would carry them (a placeholder callee).
    let mut as_call = config.clone();
    as_call.insert("to".into(), "+10000000000".into());
    as_call.insert("from".into(), "+10000000000".into());
    call_request::parse(&Value::Object(as_call), defaults)?;
    Ok(AgentBody { name, config })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaults() -> Defaults<'static> {
        call_request::test_defaults()
    }

    fn field(body: Value) -> String {
        parse(&body, &defaults()).unwrap_err().field
    }

    #[test]
    fn an_agent_is_checked_like_a_call_and_its_templates_parse() {
        let ok = parse(
            &json!({"name": "Front desk", "instructions": "You are {{agent_name}} for {{clinic}}.",
                    "voice": "cedar", "model": "gpt-realtime-2", "max_duration_s": 600, "record": false,
                    "tools": [{"name": "lookup", "url": "https://crm.example/lookup"}], "greeting": null}),
            &defaults(),
        )
        .unwrap();
        assert_eq!(ok.name, "Front desk");
        assert!(!ok.config.contains_key("name") && !ok.config.contains_key("greeting"), "{:?}", ok.config);
        assert_eq!(field(json!({})), "name");
        assert_eq!(field(json!({"name": ""})), "name");
        assert_eq!(field(json!({"name": "a", "to": "+15551234567"})), "to", "a callee is a call's, not an agent's");
        assert_eq!(field(json!({"name": "a", "instructions": "Hi {{name"})), "instructions");
        assert_eq!(field(json!({"name": "a", "voice": "robot"})), "voice");
        assert_eq!(field(json!({"name": "a", "model": "gpt-3.5-turbo"})), "model");
        assert_eq!(field(json!({"name": "a", "tools": [{"name": "x", "url": "http://10.0.0.1/"}]})), "tools[0].url");
        assert!(parse(&json!({"name": "a", "record": true}), &defaults()).is_ok());
        let off = Defaults { recordings: false, ..defaults() };
        assert_eq!(parse(&json!({"name": "a", "record": true}), &off).unwrap_err().field, "record");
        assert_eq!(field(json!({"name": "a", "record": "yes"})), "record");
        assert_eq!(field(json!({"name": "a", "analysis": {"summary": false}})), "analysis");
        assert_eq!(field(json!({"name": "a", "analysis": {"schema": {"type": "array"}}})), "analysis.schema");
        assert!(parse(&json!({"name": "a", "analysis": {"summary": true}}), &defaults()).is_ok());
        assert_eq!(field(json!({"name": "a", "max_cost_usd": -1})), "max_cost_usd");
    }

    #[test]
    fn a_patch_replaces_given_fields_removes_nulls_and_is_checked_whole() {
        let current = parse(&json!({"name": "a", "instructions": "Be kind.", "voice": "marin"}), &defaults()).unwrap();
        let p = patch(&current, &json!({"voice": null, "greeting": "Hello {{first_name}}"}), &defaults()).unwrap();
        assert_eq!(p.name, "a");
        assert_eq!(p.config.get("voice"), None);
        assert_eq!(p.config["greeting"], "Hello {{first_name}}");
        assert_eq!(p.config["instructions"], "Be kind.");
        assert_eq!(patch(&current, &json!({"name": null}), &defaults()).unwrap_err().field, "name");
        assert_eq!(patch(&current, &json!({"voice": "nope"}), &defaults()).unwrap_err().field, "voice");
    }

    #[test]
    fn a_call_from_an_agent_takes_its_fields_under_its_own_and_fills_the_templates() {
        let agent = parse(
            &json!({"name": "a", "instructions": "You call {{first_name}} about {{topic}}.", "greeting": "Hi {{first_name}}!",
                    "voice": "marin", "max_duration_s": 300}),
            &defaults(),
        )
        .unwrap();
        let body = json!({"to": "+15551234567", "agent_id": "ag_1", "voice": "cedar", "greeting": null,
                          "variables": {"first_name": "Ada", "topic": "your visit"}});
        let merged = call_request::with_agent(&body, Some(&agent.config)).unwrap();
        assert_eq!(merged["instructions"], "You call Ada about your visit.");
        assert_eq!(merged["greeting"], "Hi Ada!", "a null on the call keeps the agent's");
        assert_eq!(merged["voice"], "cedar", "the call's own field wins");
        assert_eq!(merged["max_duration_s"], 300);
        let missing = json!({"to": "+15551234567", "variables": {"first_name": "Ada"}});
        let e = call_request::with_agent(&missing, Some(&agent.config)).unwrap_err();
        assert_eq!(e.field, "variables");
        assert!(e.problem.contains("{{topic}}"), "{}", e.problem);
        // Without an agent or variables nothing is a template (text with braces stays as it is).
        let plain = json!({"to": "+15551234567", "instructions": "Say {{hi}}"});
        assert_eq!(call_request::with_agent(&plain, None).unwrap(), plain);
    }
}
