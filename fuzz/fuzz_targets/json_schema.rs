//! JSON Schemas users give (`outcome_schema`, tool `parameters`, analysis schemas) and the
//! arguments checked against them: first line the schema, the rest the arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (schema, arguments) = text.split_once('\n').unwrap_or((&text, "{}"));
    let Ok(schema) = serde_json::from_str::<serde_json::Value>(schema) else { return };
    if let Ok(s) = voxbridge::model::ObjectSchema::new(schema) {
        let _ = s.check(arguments);
    }
});
