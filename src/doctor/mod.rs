//! `voxbridge doctor`: checks a deployment's configuration and what it must reach, one line per
//! check (`ok …` or `FAIL: … fix: …`), before a caller finds the mistake. The judgements are pure
//! functions of what was read (a carrier's JSON, a `Date` header, a limit); [`run`] reads them.

mod run;

pub use run::run;

use serde_json::Value;

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Passed (with what was found).
    Ok(String),
    /// Not applicable here (why); counts as passed.
    Skipped(String),
    Fail {
        problem: String,
        fix: String,
    },
}

impl Check {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), verdict: Verdict::Ok(detail.into()) }
    }

    pub fn skipped(name: impl Into<String>, why: impl Into<String>) -> Check {
        Check { name: name.into(), verdict: Verdict::Skipped(why.into()) }
    }

    pub fn fail(name: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), verdict: Verdict::Fail { problem: problem.into(), fix: fix.into() } }
    }

    pub fn passed(&self) -> bool {
        !matches!(self.verdict, Verdict::Fail { .. })
    }

    /// Its line in the report.
    pub fn line(&self) -> String {
        match &self.verdict {
            Verdict::Ok(detail) => format!("ok    {}: {detail}", self.name),
            Verdict::Skipped(why) => format!("ok    {}: skipped ({why})", self.name),
            Verdict::Fail { problem, fix } => format!("FAIL: {}: {problem} fix: {fix}", self.name),
        }
    }
}

/// The public URL: https, unless it is local (then nothing outside can reach it anyway).
pub fn public_url_scheme(public_url: &str, local: bool) -> Result<bool, Check> {
    let name = "public URL";
    let url = url::Url::parse(public_url)
        .map_err(|e| Check::fail(name, format!("{public_url} is not a URL ({e})"), "set VOXBRIDGE_PUBLIC_URL"))?;
    if local {
        return Ok(false);
    }
    if url.scheme() != "https" {
        return Err(Check::fail(
            name,
            format!("{public_url} is not https: carriers' media would travel unencrypted, and Twilio refuses ws://"),
            "serve behind TLS (Fly.io, Railway and most proxies do) and set VOXBRIDGE_PUBLIC_URL=https://…",
        ));
    }
    Ok(true)
}

/// A Twilio `IncomingPhoneNumbers` page for `number`: its voice URL must be this server's.
pub fn twilio_number(page: &Value, number: &str, public_url: &str) -> Check {
    let name = format!("Twilio number {number}");
    let want = format!("{}/twilio/voice", public_url.trim_end_matches('/'));
    let Some(entry) =
        page["incoming_phone_numbers"].as_array().and_then(|l| l.iter().find(|n| n["phone_number"] == number))
    else {
        return Check::fail(
            name,
            "is not a number of this Twilio account",
            "buy or port it in this account, or fix TWILIO_FROM_NUMBER / the number's binding (PUT /v1/numbers)",
        );
    };
    match entry["voice_url"].as_str() {
        Some(url) if url == want => Check::ok(name, format!("calls go to {want}")),
        got => Check::fail(
            name,
            format!("its voice URL is {}, not this server's", got.unwrap_or("unset")),
            format!("set the number's voice webhook (POST) to {want} in Twilio's console or API"),
        ),
    }
}

/// A Telnyx Call Control application: its webhook URL must be this server's.
pub fn telnyx_application(app: &Value, public_url: &str) -> Check {
    let name = "Telnyx connection";
    let want = format!("{}/webhooks/telnyx", public_url.trim_end_matches('/'));
    match app["data"]["webhook_event_url"].as_str() {
        Some(url) if url == want => Check::ok(name, format!("webhooks go to {want}")),
        got => Check::fail(
            name,
            format!("its webhook URL is {}, not this server's", got.unwrap_or("unset")),
            format!("set the Call Control application's webhook URL to {want} (Telnyx portal → Call Control)"),
        ),
    }
}

/// The carrier's clock (`Date` header) against ours: signatures carry timestamps.
pub fn clock(carrier: &str, date: Option<&str>, now: jiff::Timestamp) -> Check {
    let name = format!("clock against {carrier}");
    let Some(theirs) = date.and_then(|d| jiff::fmt::rfc2822::parse(d).ok()).map(|z| z.timestamp()) else {
        return Check::skipped(name, format!("{carrier} sent no Date"));
    };
    let skew = (now.as_millisecond() - theirs.as_millisecond()).abs() as f64 / 1000.0;
    if skew <= 5.0 {
        Check::ok(name, format!("{skew:.0} s apart"))
    } else {
        Check::fail(
            name,
            format!("this machine's clock is {skew:.0} s off {carrier}'s"),
            "synchronise it (NTP: chrony or systemd-timesyncd)",
        )
    }
}

/// The open-file limit against what the caps need.
pub fn descriptors(limit: u64, caps: crate::connections::Caps) -> Check {
    let name = "open-file limit";
    let fitted = caps.fit(limit);
    if fitted == caps {
        Check::ok(name, format!("{limit} descriptors: enough for {} live calls", caps.live_calls))
    } else {
        Check::fail(
            name,
            format!(
                "{limit} descriptors hold {} live calls, not VOXBRIDGE_MAX_LIVE_CALLS={}",
                fitted.live_calls, caps.live_calls
            ),
            "raise it (`ulimit -n`, LimitNOFILE= in systemd, --ulimit nofile= in Docker) or lower the caps",
        )
    }
}

/// An OpenAI `GET /v1/models/{model}` answer.
pub fn openai_model(model: &str, status: u16, body: &Value) -> Check {
    let name = format!("OpenAI model {model}");
    let message = body["error"]["message"].as_str().unwrap_or("").to_string();
    match status {
        200 => Check::ok(name, "exists and the key may use it"),
        401 => Check::fail(name, format!("the key is refused: {message}"), "set OPENAI_API_KEY to a valid key"),
        403 | 404 => Check::fail(
            name,
            format!("not available to this key ({status}): {message}"),
            "choose a model the key has (VOXBRIDGE_REALTIME_MODEL, VOXBRIDGE_LIVE_MODEL, VOXBRIDGE_ANALYSIS_MODEL)",
        ),
        s => Check::fail(name, format!("OpenAI answered {s}: {message}"), "try again; see status.openai.com"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_judgement_passes_what_is_right_and_names_the_fix_for_what_is_not() {
        let page = json!({"incoming_phone_numbers": [{"phone_number": "+15557654321", "voice_url": "https://vb.example.com/twilio/voice"}]});
        assert!(twilio_number(&page, "+15557654321", "https://vb.example.com/").passed());
        let wrong = twilio_number(&page, "+15557654321", "https://other.example.com");
        assert!(
            wrong
                .line()
                .starts_with("FAIL: Twilio number +15557654321: its voice URL is https://vb.example.com/twilio/voice"),
            "{}",
            wrong.line()
        );
        assert!(
            wrong
                .line()
                .contains("fix: set the number's voice webhook (POST) to https://other.example.com/twilio/voice")
        );
        assert!(!twilio_number(&json!({"incoming_phone_numbers": []}), "+1555", "https://x").passed());
        let app = json!({"data": {"webhook_event_url": "https://vb.example.com/webhooks/telnyx"}});
        assert!(telnyx_application(&app, "https://vb.example.com").passed());
        assert!(!telnyx_application(&json!({"data": {}}), "https://vb.example.com").passed());
        let now: jiff::Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        assert!(clock("Twilio", Some("Mon, 07 Dec 2026 12:00:03 GMT"), now).passed());
        assert!(!clock("Twilio", Some("Mon, 07 Dec 2026 12:00:09 GMT"), now).passed());
        assert!(matches!(clock("Twilio", None, now).verdict, Verdict::Skipped(_)));
        let caps = crate::connections::Caps { live_calls: 1000, pending_streams: 256, connections: 1024 };
        assert!(descriptors(65_536, caps).passed());
        assert!(descriptors(1024, caps).line().contains("not VOXBRIDGE_MAX_LIVE_CALLS=1000"));
        assert!(public_url_scheme("http://localhost:8080", true).is_ok_and(|outside| !outside));
        assert!(public_url_scheme("https://vb.example.com", false).is_ok_and(|outside| outside));
        assert!(public_url_scheme("http://vb.example.com", false).is_err());
        assert!(openai_model("gpt-realtime", 200, &json!({})).passed());
        assert!(
            openai_model("gpt-realtime", 401, &json!({"error": {"message": "Incorrect API key"}}))
                .line()
                .contains("Incorrect API key")
        );
        assert!(!openai_model("gpt-x", 404, &json!({})).passed());
    }
}
