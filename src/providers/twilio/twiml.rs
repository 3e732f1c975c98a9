//! TwiML answers, written with escaping for every attribute and text node (user data ends up
//! in `<Parameter value>` and `<Say>`). Pure string building; no I/O.

use std::fmt::Write;

/// Escapes text for XML attributes and text nodes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters; drop them rather than emit invalid XML.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// `<Connect><Stream>` to `stream_url` with `params`, then — reached only when our server
/// closes the socket — an apology and `<Hangup/>`.
pub fn connect_stream(stream_url: &str, params: &[(&str, &str)], apology: &str) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect>");
    let _ = write!(x, "<Stream url=\"{}\">", escape(stream_url));
    for (name, value) in params {
        let _ = write!(x, "<Parameter name=\"{}\" value=\"{}\"/>", escape(name), escape(value));
    }
    let _ = write!(x, "</Stream></Connect><Say>{}</Say><Hangup/></Response>", escape(apology));
    x
}

/// Connects the caller to `to`: a number (`<Number>`) or a SIP address (`<Sip>`, `sip:…`),
/// ringing it `timeout_s`, showing `caller_id` (one of the account's numbers) when given. When
/// the human's leg ends (answered or not) Twilio asks `action` (signed) what the caller does
/// next. The call the AI was on goes on with this; the media stream ends.
pub fn dial(to: &str, timeout_s: u32, caller_id: Option<&str>, action: &str) -> String {
    let target = if to.starts_with("sip:") {
        format!("<Sip>{}</Sip>", escape(to))
    } else {
        format!("<Number>{}</Number>", escape(to))
    };
    let caller_id = caller_id.map(|c| format!(" callerId=\"{}\"", escape(c))).unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial action=\"{}\" method=\"POST\" timeout=\"{timeout_s}\"{caller_id}>{target}</Dial></Response>",
        escape(action)
    )
}

/// Hangs up (the caller's leg, after a transfer that was answered).
pub fn hang_up() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Hangup/></Response>".into()
}

/// A spoken message and hang-up (unknown or finished call, refused call).
pub fn say_hangup(text: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{}</Say><Hangup/></Response>", escape(text))
}

/// Refuses a ringing call: the caller hears it is busy, nothing is answered (or billed).
pub fn reject() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Reject reason=\"busy\"/></Response>".to_string()
}

/// Extracts the stream URL and parameters from a `<Connect><Stream>` answer. Used by the
/// replay client, which plays Twilio's part; tolerant of attribute order and spacing.
pub fn parse_connect_stream(xml: &str) -> Option<(String, Vec<(String, String)>)> {
    let stream = xml.find("<Stream")?;
    let url = attr(&xml[stream..], "url")?;
    let mut params = Vec::new();
    let mut rest = &xml[stream..];
    while let Some(i) = rest.find("<Parameter") {
        rest = &rest[i + 10..];
        let end = rest.find('>')?;
        let tag = &rest[..end];
        params.push((attr(tag, "name")?, attr(tag, "value")?));
    }
    Some((url, params))
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_stream_escapes_and_round_trips() {
        let xml =
            connect_stream("wss://h.example/media/twilio", &[("call_id", "c1"), ("note", "a\"<&>'b")], "Sorry & bye");
        assert!(xml.starts_with("<?xml"));
        assert!(xml.contains("<Stream url=\"wss://h.example/media/twilio\">"));
        assert!(xml.contains("value=\"a&quot;&lt;&amp;&gt;&apos;b\""));
        assert!(xml.ends_with("</Connect><Say>Sorry &amp; bye</Say><Hangup/></Response>"));
        let (url, params) = parse_connect_stream(&xml).unwrap();
        assert_eq!(url, "wss://h.example/media/twilio");
        assert_eq!(params[1], ("note".to_string(), "a\"<&>'b".to_string()));
    }

    #[test]
    fn control_characters_are_dropped() {
        assert_eq!(escape("a\u{0}b\u{1b}c\n"), "abc\n");
    }

    #[test]
    fn a_transfer_dials_a_number_or_a_sip_address_escaped_and_asks_what_next() {
        let action = "https://voice.test/webhooks/twilio/dial?call_id=c_1&to=%2B15550001111";
        assert_eq!(
            dial("+15550001111", 15, Some("+15557654321"), action),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial action="https://voice.test/webhooks/twilio/dial?call_id=c_1&amp;to=%2B15550001111" method="POST" timeout="15" callerId="+15557654321"><Number>+15550001111</Number></Dial></Response>"#
        );
        let sip = dial("sip:desk@pbx.example.com?x=1&y=2", 25, None, action);
        assert!(sip.contains("<Sip>sip:desk@pbx.example.com?x=1&amp;y=2</Sip>") && !sip.contains("callerId"), "{sip}");
    }
}
