//! Twilio REST calls voxbridge makes (originate, hang up, read a call's status), against a
//! configurable base URL so tests point it at a local fake. Errors say whether a retry can help.

use crate::providers::rest::{self, RestError};

const PROVIDER: &str = "Twilio";

/// A Twilio account's REST client.
#[derive(Clone)]
pub struct TwilioRest {
    http: reqwest::Client,
    base: String,
    account_sid: String,
    auth_token: String,
}

impl std::fmt::Debug for TwilioRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioRest")
            .field("base", &self.base)
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

impl TwilioRest {
    pub fn new(base: &str, account_sid: &str, auth_token: &str) -> TwilioRest {
        TwilioRest {
            http: rest::http_client(),
            base: base.trim_end_matches('/').to_string(),
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
        }
    }

    /// The account calls are placed on.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// Replaces what a live call does with `twiml` (a transfer: the stream ends, the `<Dial>`
    /// runs).
    pub async fn redirect(&self, call_sid: &str, twiml: &str) -> Result<(), RestError> {
        let request = self.http.post(self.call_url(Some(call_sid))?).form(&[("Twiml", twiml)]);
        self.send(request).await.map(drop)
    }

    /// Ends a live call (`Status=completed`). A call that already ended (404 / 20404) is success.
    pub async fn hang_up(&self, call_sid: &str) -> Result<(), RestError> {
        let request = self.http.post(self.call_url(Some(call_sid))?).form(&[("Status", "completed")]);
        match self.send(request).await {
            Ok(_) | Err(RestError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// An outbound call to create (protocols.md §2.2). Our call id travels in the URLs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCall {
    pub to: String,
    pub from: String,
    /// `/twiml/{call_id}` on our public URL.
    pub twiml_url: String,
    /// Our status route; receives every progress event.
    pub status_callback: String,
    /// Seconds to ring before `no-answer`.
    pub timeout_s: u32,
    /// Answering-machine detection (async, results to the status route).
    pub machine_detection: bool,
    /// `TimeLimit`: Twilio ends the connected call after this many seconds.
    pub time_limit_s: u32,
}

impl NewCall {
    /// The form body, in Twilio's field names (repeated `StatusCallbackEvent`).
    pub fn form(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("To", self.to.clone()),
            ("From", self.from.clone()),
            ("Url", self.twiml_url.clone()),
            ("Method", "POST".into()),
            ("StatusCallback", self.status_callback.clone()),
            ("StatusCallbackMethod", "POST".into()),
            ("Timeout", self.timeout_s.to_string()),
            ("TimeLimit", self.time_limit_s.to_string()),
        ];
        for event in ["initiated", "ringing", "answered", "completed"] {
            f.push(("StatusCallbackEvent", event.into()));
        }
        if self.machine_detection {
            f.push(("MachineDetection", "DetectMessageEnd".into()));
            f.push(("AsyncAmd", "true".into()));
            f.push(("AsyncAmdStatusCallback", self.status_callback.clone()));
            f.push(("AsyncAmdStatusCallbackMethod", "POST".into()));
        }
        f
    }
}

impl TwilioRest {
    /// `Calls.json`, or one call's `Calls/{sid}.json`: every segment percent-encoded, a sid
    /// not of a call id's shape never sent.
    fn call_url(&self, call_sid: Option<&str>) -> Result<String, RestError> {
        let account = rest::path_segment(&self.account_sid);
        Ok(match call_sid {
            Some(sid) => {
                let sid = rest::call_id_segment(PROVIDER, sid)?;
                format!("{}/2010-04-01/Accounts/{account}/Calls/{sid}.json", self.base)
            }
            None => format!("{}/2010-04-01/Accounts/{account}/Calls.json", self.base),
        })
    }

    /// Sends an authenticated request; a 2xx answer's JSON body, or the classified error
    /// (`404` is handed back as `Rejected` for the caller to judge).
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, serde_json::Value), RestError> {
        match rest::send(PROVIDER, request.basic_auth(&self.account_sid, Some(&self.auth_token))).await? {
            Ok((status, body)) => Ok((status, serde_json::from_str(&body).unwrap_or_default())),
            Err((status, body)) => Err(classify(status, &body)),
        }
    }

    /// Places a call; returns its `CallSid`. 4xx is final (the provider's message kept),
    /// 5xx/429/network may be retried.
    pub async fn create_call(&self, call: &NewCall) -> Result<String, RestError> {
        let (status, v) = self.send(self.http.post(self.call_url(None)?).form(&call.form())).await?;
        match v["sid"].as_str() {
            Some(sid) if !sid.is_empty() => Ok(sid.to_string()),
            _ => {
                Err(RestError::Unavailable { provider: PROVIDER, status, message: "answer carried no call sid".into() })
            }
        }
    }

    /// The sid of the call to `to` from `from` created at or after `since` (Unix ms), the
    /// earliest if several: finds an attempt whose create answer was lost. `GET Calls.json`
    /// filtered by number (Twilio's list is eventually consistent, seconds behind).
    pub async fn find_call(&self, to: &str, from: &str, since: i64) -> Result<Option<String>, RestError> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("To", to), ("From", from), ("PageSize", "50")])
            .finish();
        let (_, v) = self.send(self.http.get(format!("{}?{query}", self.call_url(None)?))).await?;
        let created = |c: &serde_json::Value| {
            let text = c["date_created"].as_str()?;
            jiff::fmt::rfc2822::parse(text).ok().map(|z| z.timestamp().as_millisecond())
        };
        Ok(v["calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some((created(c)?, c["sid"].as_str()?)))
            // `date_created` has whole seconds: the attempt's own second counts.
            .filter(|(at, _)| *at >= since - 1_000)
            .min_by_key(|(at, _)| *at)
            .map(|(_, sid)| sid.to_string()))
    }

    /// The provider's status of a call (`queued`, `ringing`, `in-progress`, `completed`, …);
    /// used to reconcile a call whose worker died before re-dialling anyone.
    pub async fn call_status(&self, call_sid: &str) -> Result<String, RestError> {
        let (_, v) = self.send(self.http.get(self.call_url(Some(call_sid))?)).await?;
        Ok(v["status"].as_str().unwrap_or_default().to_string())
    }
}

/// Maps an error answer (classic `{code, message}` or RFC 9457 `{title, detail}`) to an error.
pub fn classify(status: u16, body: &str) -> RestError {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let message =
        v["message"].as_str().or(v["detail"].as_str()).or(v["title"].as_str()).unwrap_or("no message").to_string();
    RestError::from_status(PROVIDER, status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_status_and_keep_the_message() {
        let e = classify(
            400,
            r#"{"code":21211,"message":"The 'To' number +1555 is not a valid phone number.","status":400}"#,
        );
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("not a valid phone number"));
        assert!(classify(429, "").is_retryable());
        assert!(classify(503, r#"{"title":"busy","detail":"try later"}"#).to_string().contains("try later"));
    }
}
