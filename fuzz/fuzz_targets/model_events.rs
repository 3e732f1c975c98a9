//! OpenAI Realtime and GPT-Live server events, as a sequence (one per line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxbridge::model::{ModelApi, ModelAudio, ModelConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for api in [ModelApi::Realtime, ModelApi::Live] {
        let mut model = voxbridge::model::open(ModelConfig::defaults(api, "gpt-realtime", ModelAudio::Pcmu));
        for line in text.lines() {
            let _ = model.receive(line);
        }
    }
});
