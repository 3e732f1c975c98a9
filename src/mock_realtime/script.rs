//! A rehearsal script for the mock model (`voxbridge mock-realtime --script FILE`,
//! `VOXBRIDGE_MOCK_SCRIPT` for the built-in one): what the AI says after each caller turn, and
//! which action it takes then — one of the call's own tools with these arguments, an outcome
//! reported, a transfer asked for, the call ended. A business tries its agent's tools, outcome
//! and transfer on one laptop before any call is paid for.
//!
//! ```json
//! {"turns": [
//!   {"say": "Let me look at the calendar.", "tool": "check_calendar", "arguments": {"day": "tuesday"}},
//!   {"say": "You are booked for Tuesday at nine.", "outcome": {"booked": true}},
//!   {"say": "Let me get you someone from the front desk.", "transfer": "+15550001111"},
//!   {"say": "Goodbye!", "end_call": true}
//! ]}
//! ```

use serde_json::{Map, Value, json};

/// What the AI does after one caller turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Turn {
    /// The answer's transcript (its audio is the mock's own).
    pub say: Option<String>,
    /// The tool call the answer ends with: name, arguments as JSON text.
    pub action: Option<(String, String)>,
}

/// A script: turn `n` (from 1) answers the caller's `n`th turn; later turns get the mock's usual
/// answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Script {
    pub turns: Vec<Turn>,
}

const ACTIONS: [&str; 4] = ["tool", "outcome", "transfer", "end_call"];

impl Script {
    /// Reads a script, naming the turn and field of the first mistake.
    pub fn parse(text: &str) -> Result<Script, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let turns = doc.get("turns").and_then(Value::as_array).ok_or("must be an object with \"turns\": [ … ]")?;
        let turns: Result<Vec<Turn>, String> =
            turns.iter().enumerate().map(|(i, t)| turn(t).map_err(|e| format!("turns[{i}]: {e}"))).collect();
        Ok(Script { turns: turns? })
    }

    /// Reads the script file at `path`.
    pub fn read(path: &std::path::Path) -> Result<Script, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Script::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Turn `n` (from 1), if the script has it.
    pub fn turn(&self, n: u32) -> Option<&Turn> {
        self.turns.get((n as usize).checked_sub(1)?)
    }
}

fn turn(t: &Value) -> Result<Turn, String> {
    let Some(obj) = t.as_object() else { return Err("must be an object".into()) };
    if let Some(k) = obj.keys().find(|k| !["say", "arguments"].contains(&k.as_str()) && !ACTIONS.contains(&k.as_str()))
    {
        return Err(format!("{k} is not a turn's field (say, tool + arguments, outcome, transfer, end_call)"));
    }
    let actions: Vec<&str> = ACTIONS.iter().copied().filter(|a| obj.contains_key(*a)).collect();
    if actions.len() > 1 {
        return Err(format!("one action per turn, not {}", actions.join(" and ")));
    }
    let say = match obj.get("say") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("say must be text".into()),
    };
    let arguments = match obj.get("arguments") {
        None => Map::new(),
        Some(Value::Object(a)) if obj.contains_key("tool") => a.clone(),
        Some(_) => return Err("arguments must be an object, with a tool".into()),
    };
    let action = match actions.first().copied() {
        None => None,
        Some("tool") => match obj.get("tool") {
            Some(Value::String(name)) if !name.is_empty() => Some((name.clone(), Value::Object(arguments).to_string())),
            _ => return Err("tool must be the name of one of the call's tools".into()),
        },
        Some("outcome") => match obj.get("outcome") {
            Some(o @ Value::Object(_)) => Some((crate::model::REPORT_OUTCOME_TOOL.to_string(), o.to_string())),
            _ => return Err("outcome must be an object (the call's outcome_schema)".into()),
        },
        Some("transfer") => match obj.get("transfer") {
            Some(Value::String(to)) => Some(("transfer_call".to_string(), json!({"to": to}).to_string())),
            _ => return Err("transfer must be one of the call's transfer_to numbers".into()),
        },
        Some(_) => match obj.get("end_call") {
            Some(Value::Bool(true)) => {
                Some((crate::model::END_CALL_TOOL.to_string(), json!({"reason": "the script ends here"}).to_string()))
            }
            _ => return Err("end_call must be true".into()),
        },
    };
    Ok(Turn { say, action })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_says_and_acts_turn_by_turn() {
        let s = Script::parse(
            r#"{"turns": [
                {"say": "Checking.", "tool": "check_calendar", "arguments": {"day": "tue"}},
                {"outcome": {"booked": true}},
                {"say": "Transferring.", "transfer": "+15550001111"},
                {"say": "Bye", "end_call": true},
                {"say": "Only words."}
            ]}"#,
        )
        .unwrap();
        let action = |n: u32| s.turn(n).and_then(|t| t.action.clone());
        assert_eq!(action(1), Some(("check_calendar".into(), r#"{"day":"tue"}"#.into())));
        assert_eq!(action(2), Some(("report_outcome".into(), r#"{"booked":true}"#.into())));
        assert_eq!(action(3), Some(("transfer_call".into(), r#"{"to":"+15550001111"}"#.into())));
        assert_eq!(action(4).unwrap().0, "end_call");
        assert_eq!((s.turn(5).unwrap().say.as_deref(), action(5)), (Some("Only words."), None));
        assert!(s.turn(0).is_none() && s.turn(6).is_none());
    }

    #[test]
    fn a_wrong_script_names_the_turn_and_the_field() {
        let e = |t: &str| Script::parse(t).unwrap_err();
        assert!(e("[]").contains("\"turns\""));
        assert!(e(r#"{"turns": [{"say": "a"}, {"sing": "b"}]}"#).starts_with("turns[1]: sing"));
        assert!(e(r#"{"turns": [{"tool": "a", "end_call": true}]}"#).contains("one action per turn"));
        assert!(e(r#"{"turns": [{"outcome": "yes"}]}"#).contains("outcome must be an object"));
        assert!(e(r#"{"turns": [{"arguments": {}}]}"#).contains("with a tool"));
        assert!(e("{").starts_with("not JSON"));
    }
}
