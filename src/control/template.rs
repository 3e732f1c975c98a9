//! `{{key}}` templates (an agent's `instructions` and `greeting`), filled from a call's
//! `variables`. Written by hand: the whole language is "replace `{{key}}` by its text", and a
//! template engine (handlebars, minijinja) would bring loops, escaping and helpers a business's
//! prompt must not be interpreted with.

use serde_json::{Map, Value};

/// The longest key.
const MAX_KEY: usize = 64;

/// Whether `key` may name a variable: 1 to 64 letters, digits, `_`, `-` or `.`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY && key.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// One piece of a parsed template.
enum Piece<'a> {
    Text(&'a str),
    Key(&'a str),
}

/// Splits `text` into text and `{{ key }}`s (spaces inside the braces allowed).
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push(Piece::Text(&rest[..open]));
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err("has a {{ without a closing }}".into());
        };
        let key = after[..close].trim();
        if !valid_key(key) {
            return Err(format!("has {{{{{}}}}}: a key is 1 to 64 letters, digits, '_', '-' or '.'", &after[..close]));
        }
        out.push(Piece::Key(key));
        rest = &after[close + 2..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// The keys `text` uses, in order (checks the template).
pub fn keys(text: &str) -> Result<Vec<String>, String> {
    Ok(pieces(text)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Key(k) => Some(k.to_string()),
            Piece::Text(_) => None,
        })
        .collect())
}

/// `text` with every `{{key}}` replaced by `variables[key]`; `Err(key)` names the first key
/// without a value (a template that does not parse is returned as it is: checked earlier).
pub fn fill(text: &str, variables: &Map<String, Value>) -> Result<String, String> {
    let Ok(pieces) = pieces(text) else { return Ok(text.to_string()) };
    let mut out = String::with_capacity(text.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Key(k) => match variables.get(k).and_then(Value::as_str) {
                Some(v) => out.push_str(v),
                None => return Err(k.to_string()),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn keys_are_replaced_by_their_values_and_a_missing_one_is_named() {
        let v = vars(json!({"first_name": "Ada", "clinic": "Acme Dental"}));
        assert_eq!(fill("Hi {{first_name}}, this is {{ clinic }}.", &v).unwrap(), "Hi Ada, this is Acme Dental.");
        assert_eq!(fill("no keys {at all}", &v).unwrap(), "no keys {at all}");
        assert_eq!(fill("{{first_name}}{{first_name}}", &v).unwrap(), "AdaAda");
        assert_eq!(fill("Call {{slot}} please", &v).unwrap_err(), "slot");
        // A value is inserted as text, never parsed again.
        let tricky = vars(json!({"a": "{{b}}", "b": "x"}));
        assert_eq!(fill("{{a}}", &tricky).unwrap(), "{{b}}");
    }

    #[test]
    fn a_broken_template_is_refused_with_what_is_wrong() {
        assert_eq!(keys("Hello {{name}} at {{ place }}").unwrap(), ["name", "place"]);
        assert!(keys("Hello {{name").unwrap_err().contains("without a closing"));
        assert!(keys("Hello {{}}").unwrap_err().contains("a key is"));
        assert!(keys("Hello {{two words}}").unwrap_err().contains("{{two words}}"));
        assert!(keys("plain").unwrap().is_empty());
    }
}
