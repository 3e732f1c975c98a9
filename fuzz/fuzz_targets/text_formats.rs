//! The text formats read from users: `{{key}}` templates (and filling them), rehearsal scripts,
//! fixture files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = voxbridge::control::template::keys(&text);
    let mut vars = serde_json::Map::new();
    vars.insert("name".into(), "Ada".into());
    let _ = voxbridge::control::template::fill(&text, &vars);
    let _ = voxbridge::mock_realtime::script::Script::parse(&text);
    let _ = voxbridge::fixture::Fixture::parse(&text, "fuzz");
});
