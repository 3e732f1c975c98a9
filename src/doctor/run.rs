//! The doctor's reads: the configuration, the database, this server from outside, the
//! carriers' and OpenAI's APIs (each with a short timeout, so a check that cannot be made fails
//! with why instead of hanging).

use std::time::Duration;

use serde_json::Value;

use super::Check;
use crate::config::Config;

/// Every request's limit.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs every check that applies to `config`, in order.
pub async fn run(config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    match config.validate() {
        Ok(()) => checks.push(Check::ok("configuration", "every variable parses")),
        Err(e) => {
            checks.push(Check::fail(
                "configuration",
                format!("{}: {}", e.variable, e.problem),
                format!("correct {}", e.variable),
            ));
            return checks;
        }
    }
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    checks.push(database(config).await);
    checks.extend(public_url(config, &http).await);
    checks.extend(twilio(config, &http).await);
    checks.extend(telnyx(config, &http).await);
    checks.extend(openai(config, &http).await);
    checks.push(recordings(config).await);
    checks.push(files(config));
    checks
}

async fn database(config: &Config) -> Check {
    let name = "database";
    let store = match crate::store::Store::open(&config.database_url).await {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                name,
                format!("cannot open {}: {e}", crate::store::redact_url(&config.database_url)),
                "check VOXBRIDGE_DATABASE_URL (the path's directory exists and is writable; PostgreSQL is up and the credentials right)",
            );
        }
    };
    let written = store.probe_write(crate::store::now_ms()).await;
    let _ = store.close().await;
    match written {
        Ok(()) => Check::ok(
            name,
            format!("{} opens, migrates and takes writes", crate::store::redact_url(&config.database_url)),
        ),
        Err(e) => Check::fail(name, format!("refuses writes: {e}"), "free disk space, or grant the user write access"),
    }
}

async fn public_url(config: &Config, http: &reqwest::Client) -> Vec<Check> {
    let outside = match super::public_url_scheme(&config.public_url, config.public_url_is_local()) {
        Ok(outside) => outside,
        Err(fail) => return vec![fail],
    };
    if !outside {
        return vec![Check::skipped("public URL", format!("{} is local: carriers cannot reach it", config.public_url))];
    }
    let url = config.public_http("/healthz");
    let reached = match http.get(&url).send().await {
        Ok(r) if r.status() == 200 => Check::ok("public URL", format!("{url} answers from outside")),
        Ok(r) => Check::fail(
            "public URL",
            format!("{url} answered {}", r.status()),
            "route the public URL to this server's port (VOXBRIDGE_LISTEN)",
        ),
        Err(e) => Check::fail(
            "public URL",
            format!("{url} cannot be reached: {e}"),
            "start the server, and point DNS / the proxy at it",
        ),
    };
    vec![Check::ok("public URL scheme", "https"), reached]
}

/// A JSON GET, its status, `Date` header and body.
async fn get(req: reqwest::RequestBuilder) -> Result<(u16, Option<String>, Value), String> {
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let date = resp.headers().get("date").and_then(|d| d.to_str().ok()).map(str::to_string);
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, date, body))
}

async fn twilio(config: &Config, http: &reqwest::Client) -> Vec<Check> {
    let (Some(sid), Some(token)) = (&config.twilio_account_sid, &config.twilio_auth_token) else {
        return vec![Check::skipped("Twilio", "TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN not set")];
    };
    let base = config.twilio_api_base.trim_end_matches('/');
    let account = get(http.get(format!("{base}/2010-04-01/Accounts/{sid}.json")).basic_auth(sid, Some(token))).await;
    let mut checks = match account {
        Ok((200, date, _)) => vec![
            Check::ok("Twilio credentials", format!("account {sid}")),
            super::clock("Twilio", date.as_deref(), jiff::Timestamp::now()),
        ],
        Ok((status, _, body)) => {
            let message = body["message"].as_str().unwrap_or("");
            return vec![Check::fail(
                "Twilio credentials",
                format!("Twilio answered {status}: {message}"),
                "set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN from the console (Account info)",
            )];
        }
        Err(e) => {
            return vec![Check::fail(
                "Twilio credentials",
                format!("cannot reach {base}: {e}"),
                "check TWILIO_API_BASE and the network",
            )];
        }
    };
    for number in numbers(config, "twilio", config.twilio_from_number.as_deref()).await {
        let query: String =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("PhoneNumber", &number).finish();
        let url = format!("{base}/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json?{query}");
        checks.push(match get(http.get(url).basic_auth(sid, Some(token))).await {
            Ok((200, _, page)) => super::twilio_number(&page, &number, &config.public_url),
            Ok((status, _, _)) => Check::fail(
                format!("Twilio number {number}"),
                format!("Twilio answered {status}"),
                "check the account's access to its numbers",
            ),
            Err(e) => Check::fail(format!("Twilio number {number}"), e, "check the network"),
        });
    }
    checks
}

/// The numbers to check on `provider`: its caller id and the numbers bound to agents.
async fn numbers(config: &Config, provider: &str, from: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = from.map(str::to_string).into_iter().collect();
    if let Ok(store) = crate::store::Store::open(&config.database_url).await {
        for n in store.numbers().await.unwrap_or_default() {
            if n.provider.as_deref().is_none_or(|p| p == provider) && !out.contains(&n.e164) {
                out.push(n.e164);
            }
        }
        let _ = store.close().await;
    }
    out
}

async fn telnyx(config: &Config, http: &reqwest::Client) -> Vec<Check> {
    let (Some(key), Some(connection)) = (&config.telnyx_api_key, &config.telnyx_connection_id) else {
        return vec![Check::skipped("Telnyx", "TELNYX_API_KEY / TELNYX_CONNECTION_ID not set")];
    };
    let base = config.telnyx_api_base.trim_end_matches('/');
    match get(http.get(format!("{base}/v2/call_control_applications/{connection}")).bearer_auth(key)).await {
        Ok((200, date, app)) => vec![
            Check::ok("Telnyx key", "accepted"),
            super::telnyx_application(&app, &config.public_url),
            super::clock("Telnyx", date.as_deref(), jiff::Timestamp::now()),
        ],
        Ok((401 | 403, _, _)) => {
            vec![Check::fail("Telnyx key", "refused", "set TELNYX_API_KEY to a key from the portal (API Keys)")]
        }
        Ok((404, _, _)) => vec![
            Check::ok("Telnyx key", "accepted"),
            Check::fail(
                "Telnyx connection",
                format!("no Call Control application {connection}"),
                "set TELNYX_CONNECTION_ID to the application's id (Call Control → Applications)",
            ),
        ],
        Ok((status, _, _)) => {
            vec![Check::fail("Telnyx key", format!("Telnyx answered {status}"), "try again; see status.telnyx.com")]
        }
        Err(e) => vec![Check::fail(
            "Telnyx key",
            format!("cannot reach {base}: {e}"),
            "check TELNYX_API_BASE and the network",
        )],
    }
}

/// The REST base of the OpenAI API the realtime URL belongs to (`wss://host/v1/realtime` →
/// `https://host/v1`).
fn openai_base(realtime_url: &str) -> Option<String> {
    let mut url = url::Url::parse(realtime_url).ok()?;
    let scheme = if url.scheme() == "ws" { "http" } else { "https" };
    url.set_scheme(scheme).ok()?;
    url.set_path("/v1");
    Some(url.as_str().trim_end_matches('/').to_string())
}

async fn openai(config: &Config, http: &reqwest::Client) -> Vec<Check> {
    if config.uses_embedded_mock() {
        return vec![Check::skipped("OpenAI", "no OPENAI_API_KEY: the built-in mock model answers calls")];
    }
    let Some(key) = &config.openai_api_key else {
        return vec![Check::fail("OpenAI", "no OPENAI_API_KEY while a model URL is set", "set OPENAI_API_KEY")];
    };
    let Some(base) = openai_base(&config.realtime_url) else {
        return vec![Check::fail("OpenAI", "VOXBRIDGE_REALTIME_URL has no host", "correct VOXBRIDGE_REALTIME_URL")];
    };
    let mut models = vec![config.realtime_model.as_str(), config.analysis_model.as_str()];
    if matches!(config.model_api, crate::config::ModelApiArg::Live) {
        models.push(config.live_model.as_str());
    }
    let mut checks = Vec::new();
    for model in models {
        checks.push(match get(http.get(format!("{base}/models/{model}")).bearer_auth(key)).await {
            Ok((status, _, body)) => super::openai_model(model, status, &body),
            Err(e) => Check::fail(
                format!("OpenAI model {model}"),
                format!("cannot reach {base}: {e}"),
                "check the network (and VOXBRIDGE_REALTIME_URL)",
            ),
        });
        if checks.last().is_some_and(|c| c.line().contains("the key is refused")) {
            break;
        }
    }
    checks
}

/// Where recordings go takes a write (a probe object written and deleted).
async fn recordings(config: &Config) -> Check {
    let name = "recordings";
    let storage = match crate::recording::storage::Storage::open(&config.recordings(), &config.recordings_spool()) {
        Ok(Some(storage)) => storage,
        Ok(None) => {
            return Check::skipped(name, "VOXBRIDGE_RECORDINGS is off: calls asking to be recorded are refused");
        }
        Err(e) => return Check::fail(name, e, "correct VOXBRIDGE_RECORDINGS or the AWS_* variables"),
    };
    let label = storage.label();
    match tokio::time::timeout(TIMEOUT, storage.check_writable()).await {
        Ok(Ok(())) => Check::ok(name, format!("{label} is writable")),
        Ok(Err(e)) => Check::fail(
            name,
            format!("{label} refuses a write: {e}"),
            "create the directory or bucket and grant write access (AWS_* credentials, AWS_ENDPOINT_URL)",
        ),
        Err(_) => {
            Check::fail(name, format!("{label} did not answer in time"), "check AWS_ENDPOINT_URL and the network")
        }
    }
}

fn files(config: &Config) -> Check {
    let wanted = crate::connections::Caps {
        live_calls: config.max_live_calls,
        pending_streams: config.max_pending_streams,
        connections: config.max_connections,
    };
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        // What the server raises its soft limit to at start: the hard one.
        Ok((_, hard)) => super::descriptors(hard, wanted),
        Err(e) => Check::fail("open-file limit", format!("cannot be read: {e}"), "check the process limits"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openai_rest_base_is_derived_from_the_realtime_url() {
        assert_eq!(super::openai_base("wss://api.openai.com/v1/realtime").unwrap(), "https://api.openai.com/v1");
        assert_eq!(super::openai_base("ws://127.0.0.1:8090/v1/realtime").unwrap(), "http://127.0.0.1:8090/v1");
    }
}
