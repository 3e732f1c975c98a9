//! The tools a call's model may use, in one registry both protocols render from: Realtime lists
//! them in `session.update`, GPT-Live in its Responses delegation. The core asks the registry
//! what a named call is; only it decides what a call does.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

/// The name of the built-in tool that ends the call.
pub const END_CALL_TOOL: &str = "end_call";

/// What a tool call the model made turns out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// `end_call`: the AI says goodbye and hangs up.
    EndCall,
}

/// One function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// A JSON Schema object for the arguments.
    pub parameters: Value,
    pub kind: ToolKind,
}

/// A call's tools. Shared, not copied: a call's settings are cloned several times (its record,
/// the session in use, a pre-warm), and a schema is a tree of maps (~6 KB a call, heaptrack).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRegistry {
    tools: Arc<[ToolSpec]>,
}

impl Default for ToolRegistry {
    /// The built-in tools every call has (built once).
    fn default() -> ToolRegistry {
        static BUILT_IN: OnceLock<Arc<[ToolSpec]>> = OnceLock::new();
        ToolRegistry { tools: Arc::clone(BUILT_IN.get_or_init(built_in)) }
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
    }])
}

impl ToolRegistry {
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
    }
}
