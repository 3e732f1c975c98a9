//! Twilio and Telnyx media-stream messages, as a sequence (one per line): the sessions are state
//! machines (`start`, then media, marks, `stop`), so sequences reach their later states.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxbridge::providers::CarrierSession;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut twilio = voxbridge::providers::twilio::TwilioSession::new();
    let mut telnyx = voxbridge::providers::telnyx::media::TelnyxSession::new();
    for line in text.lines() {
        let _ = twilio.receive(line);
        let _ = CarrierSession::receive(&mut telnyx, line);
    }
    let _ = telnyx.flush_held();
});
