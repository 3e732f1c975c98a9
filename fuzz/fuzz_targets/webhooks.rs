//! Webhook bodies and signature headers: Telnyx events and Ed25519 signatures, Twilio forms
//! (status callbacks) and HMAC signatures, our own event signatures, the inbound webhook's answer.
//! The first line is the header under test, the rest the body. No forged signature may pass.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (header, body) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = voxbridge::providers::telnyx::webhook::parse(body.as_bytes());
    let key = voxbridge::providers::telnyx::signature::PublicKey::from_base64(
        &voxbridge::providers::telnyx::signature::public_key_base64(&[7; 32]),
    )
    .unwrap();
    let (signature, ts) = header.split_once(' ').unwrap_or((header, "1765000000"));
    assert!(key.verify(Some(signature), Some(ts), body.as_bytes(), 1_765_000_000).is_err());
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let _ = voxbridge::providers::twilio::status::parse(&params);
    assert!(!voxbridge::providers::twilio::signature::validate("tok", "https://x.test/v", &params, header));
    assert!(!voxbridge::webhooks::signing::verify("whsec", header, body.as_bytes(), 1_765_000_000, 300));
    let _ = voxbridge::control::inbound::parse_answer(body.as_bytes());
});
