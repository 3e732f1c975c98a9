//! Stream tokens (the one-time credential of a media socket): none forged from arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (token, call_id) = text.split_once('\n').unwrap_or((&text, "c_1"));
    let tokens = voxbridge::providers::stream_token::StreamTokens::new([3; 32]);
    assert!(tokens.check(token, call_id, 1_765_000_000_000).is_none());
});
