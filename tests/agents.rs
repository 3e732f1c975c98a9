//! Agents and numbers end to end on loopback (issue 23), on whichever store the suite runs
//! (`VOXBRIDGE_TEST_POSTGRES_URL`): agents managed through `/v1/agents`, numbers bound through
//! `/v1/numbers`, an outbound call made from an agent with its variables, an inbound call to a
//! bound number served by its agent (Twilio and Telnyx: the model session's configuration
//! checked at the fake model), the inbound webhook choosing, timing out and rejecting, and an
//! agent edited while its call is live.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{Value, json};
use voxbridge::config::{AudioMode, Config};

fn v1(h: &Harness, path: &str) -> String {
    format!("http://{}/v1/{path}", h.addr)
}

async fn post(h: &Harness, path: &str, body: Value) -> (u16, Value) {
    let resp = http_client().post(v1(h, path)).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn send(h: &Harness, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = http_client().request(method, v1(h, path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(h: &Harness, path: &str) -> Value {
    send(h, reqwest::Method::GET, path, None).await.1
}

/// The number the replay client (and these tests) call.
const OUR_NUMBER: &str = "+15557654321";

fn front_desk() -> Value {
    json!({
        "name": "Front desk",
        "instructions": "You answer for {{clinic}}. The caller is {{from}}.",
        "greeting": "Thanks for calling {{clinic}}!",
        "voice": "cedar",
        "tools": [{"name": "lookup_patient", "description": "Finds the caller's file.",
                   "parameters": {"type": "object", "properties": {"phone": {"type": "string"}}},
                   "url": "https://crm.example.com/lookup"}],
        "transfer_to": [{"to": "+15550001111", "description": "The front desk"}],
        "outcome_schema": {"type": "object", "properties": {"booked": {"type": "boolean"}}},
        "max_duration_s": 600,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_and_numbers_are_managed_through_the_api_with_every_mistake_named() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let (status, agent) = post(&h, "agents", front_desk()).await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ag_") && id.len() == 19, "{id}");
    assert_eq!((agent["version"].as_i64(), agent["name"].as_str()), (Some(1), Some("Front desk")));
    assert_eq!(agent["tools"][0]["name"], "lookup_patient");
    assert!(agent["created_at"].is_string() && agent["updated_at"].is_string());
    // Checked like a call, each problem naming its field.
    for (body, field) in [
        (json!({"instructions": "x"}), "name"),
        (json!({"name": "a", "voice": "robot"}), "voice"),
        (json!({"name": "a", "model": "gpt-3.5-turbo"}), "model"),
        (json!({"name": "a", "greeting": "Hi {{name"}), "greeting"),
        (json!({"name": "a", "tools": [{"name": "t", "url": "http://169.254.169.254/"}]}), "tools[0].url"),
        (json!({"name": "a", "outcome_schema": {"type": "array"}}), "outcome_schema"),
        (json!({"name": "a", "record": true}), "record"),
        (json!({"name": "a", "to": "+15551230000"}), "to"),
    ] {
        let (status, e) = post(&h, "agents", body.clone()).await;
        assert_eq!(status, 422, "{body}: {e}");
        assert!(e["error"]["message"].as_str().unwrap().starts_with(&format!("{field}:")), "{body}: {e}");
    }
    assert_eq!(get(&h, &format!("agents/{id}")).await["name"], "Front desk");
    assert_eq!(get(&h, "agents").await["agents"].as_array().unwrap().len(), 1);
    let (status, changed) =
        send(&h, reqwest::Method::PATCH, &format!("agents/{id}"), Some(json!({"voice": null, "name": "Desk"}))).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!((changed["version"].as_i64(), changed["name"].as_str()), (Some(2), Some("Desk")));
    assert!(changed.get("voice").is_none(), "a null removes the field: {changed}");
    let (status, e) = send(&h, reqwest::Method::PATCH, &format!("agents/{id}"), Some(json!({"voice": "x"}))).await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(get(&h, &format!("agents/{id}")).await["version"], 2, "a refused change changes nothing");
    assert_eq!(send(&h, reqwest::Method::PATCH, "agents/ag_0000000000000000", Some(json!({}))).await.0, 404);

    // Numbers: bound to an agent that exists, listed, and the agent cannot go while bound.
    let put = |n: &str, body: Value| {
        let (h, n) = (&h, n.to_string());
        async move { send(h, reqwest::Method::PUT, &format!("numbers/{n}"), Some(body)).await }
    };
    let (status, e) = put(OUR_NUMBER, json!({"agent_id": "ag_0000000000000000"})).await;
    assert_eq!(status, 422, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().starts_with("agent_id:"), "{e}");
    assert_eq!(put("5557654321", json!({"agent_id": id})).await.0, 422, "not E.164");
    assert_eq!(put(OUR_NUMBER, json!({"agent_id": id, "provider": "skype"})).await.0, 422);
    let (status, n) = put("%2B15557654321", json!({"agent_id": id, "provider": "twilio"})).await;
    assert_eq!(status, 200, "{n}");
    assert_eq!((n["number"].as_str(), n["provider"].as_str()), (Some(OUR_NUMBER), Some("twilio")));
    assert_eq!(get(&h, "numbers").await["numbers"][0]["agent_id"], id);
    let (status, e) = send(&h, reqwest::Method::DELETE, &format!("agents/{id}"), None).await;
    assert_eq!(status, 409, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains(OUR_NUMBER), "{e}");
    assert_eq!(send(&h, reqwest::Method::DELETE, &format!("numbers/{OUR_NUMBER}"), None).await.0, 204);
    assert_eq!(send(&h, reqwest::Method::DELETE, &format!("numbers/{OUR_NUMBER}"), None).await.0, 404);
    assert_eq!(send(&h, reqwest::Method::DELETE, &format!("agents/{id}"), None).await.0, 204);
    assert_eq!(send(&h, reqwest::Method::GET, &format!("agents/{id}"), None).await.0, 404);
    // The routes are in the OpenAPI document.
    let doc = get(&h, "openapi.json").await;
    for path in ["/v1/agents", "/v1/agents/{id}", "/v1/numbers", "/v1/numbers/{e164}"] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_call_takes_its_agents_fields_fills_the_templates_and_keeps_its_version() {
    // No carrier configured: created calls wait in the queue, which is all this test needs.
    let h = start(config(AudioMode::G711), mock_options()).await;
    let (_, agent) = post(&h, "agents", front_desk()).await;
    let id = agent["id"].as_str().unwrap().to_string();
    let call = |extra: Value| {
        let mut body = json!({"to": "+15551230001", "from": "+15557654321", "agent_id": id});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, c) =
        post(&h, "calls", call(json!({"variables": {"clinic": "Acme Dental", "from": "us"}, "voice": "marin"}))).await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["instructions"], "You answer for Acme Dental. The caller is us.");
    assert_eq!(c["greeting"], "Thanks for calling Acme Dental!");
    assert_eq!(c["voice"], "marin", "the call's own field wins");
    assert_eq!(c["tools"][0]["name"], "lookup_patient");
    assert_eq!(c["transfer_to"][0]["to"], "+15550001111");
    assert_eq!(c["max_duration_s"], 600);
    assert_eq!((c["agent_id"].as_str(), c["agent_version"].as_i64()), (Some(id.as_str()), Some(1)));
    assert_eq!(c["variables"]["clinic"], "Acme Dental");
    let first = c["id"].as_str().unwrap().to_string();

    // A key without a value, an unknown agent, a bad variable: 422 naming what is wrong.
    let (status, e) = post(&h, "calls", call(json!({"variables": {"clinic": "Acme"}}))).await;
    assert_eq!(status, 422, "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("variables:") && message.contains("{{from}}"), "{e}");
    let (status, e) = post(&h, "calls", json!({"to": "+15551230001", "agent_id": "ag_0000000000000000"})).await;
    assert_eq!(status, 422, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().starts_with("agent_id:"), "{e}");
    let (status, e) = post(&h, "calls", call(json!({"variables": {"clinic": 5}}))).await;
    assert_eq!(status, 422, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().starts_with("variables.clinic:"), "{e}");

    // Editing the agent changes the next call, not the one made before.
    let patch = json!({"instructions": "New script for {{clinic}}."});
    assert_eq!(send(&h, reqwest::Method::PATCH, &format!("agents/{id}"), Some(patch)).await.0, 200);
    let (status, second) = post(&h, "calls", call(json!({"variables": {"clinic": "Acme"}}))).await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(
        (second["instructions"].as_str(), second["agent_version"].as_i64()),
        (Some("New script for Acme."), Some(2))
    );
    let before = get(&h, &format!("calls/{first}")).await;
    assert_eq!(before["instructions"], "You answer for Acme Dental. The caller is us.");
    assert_eq!(before["agent_version"], 1);
    // Listed by agent; the agent cannot be removed while its calls wait.
    let (status, plain) = post(&h, "calls", json!({"to": "+15551230002", "from": "+15557654321"})).await;
    assert_eq!(status, 201, "{plain}");
    let listed = get(&h, &format!("calls?agent_id={id}")).await;
    let ids: Vec<&str> = listed["calls"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second["id"].as_str().unwrap(), first.as_str()]);
    assert_eq!(get(&h, "calls?direction=outbound").await["calls"].as_array().unwrap().len(), 3);
    assert_eq!(get(&h, "calls?direction=inbound").await["calls"].as_array().unwrap().len(), 0);
    // By creation time: bounds in RFC 3339, checked.
    let first_at = before["created_at"].as_str().unwrap().to_string();
    let count = |q: String| {
        let h = &h;
        async move { get(h, &format!("calls?{q}")).await["calls"].as_array().map_or(usize::MAX, Vec::len) }
    };
    assert_eq!(count(format!("since={first_at}")).await, 3, "the first call counts from its own time");
    assert_eq!(count(format!("until={first_at}")).await, 0, "until is exclusive");
    assert_eq!(count("since=2099-01-01T00:00:00Z&direction=outbound".into()).await, 0);
    let (status, e) = send(&h, reqwest::Method::GET, "calls?since=yesterday", None).await;
    assert_eq!(status, 422, "{e}");
    let (status, e) = send(&h, reqwest::Method::DELETE, &format!("agents/{id}"), None).await;
    assert_eq!(status, 409, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("has not ended"), "{e}");
}

/// The model session's first configuration of connection `i`.
fn session(h: &Harness, i: usize) -> Value {
    let conn = h.mock.as_ref().unwrap().log.get(i).unwrap();
    conn.lock().unwrap().session_updates[0].clone()
}

fn tool_names(session: &Value) -> Vec<String> {
    session["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

/// Binds [`OUR_NUMBER`] to a new agent made from `body`; its id.
async fn bound_agent(h: &Harness, body: Value) -> String {
    let (status, agent) = post(h, "agents", body).await;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_string();
    let (status, n) =
        send(h, reqwest::Method::PUT, &format!("numbers/{OUR_NUMBER}"), Some(json!({"agent_id": id}))).await;
    assert_eq!(status, 200, "{n}");
    id
}

/// Twilio's voice webhook for a call from `from` to [`OUR_NUMBER`] (unsigned, from loopback).
async fn ring(h: &Harness, from: &str) -> String {
    http_client()
        .post(format!("http://{}/twilio/voice", h.addr))
        .form(&[("CallSid", "CAtest"), ("From", from), ("To", OUR_NUMBER)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn call_id_of(twiml: &str) -> String {
    let (_, params) = voxbridge::providers::twilio::twiml::parse_connect_stream(twiml).expect("a stream");
    params.iter().find(|(k, _)| k == "call_id").unwrap().1.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_call_to_a_bound_number_is_served_by_its_agent_and_keeps_its_version_when_edited() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let id = bound_agent(&h, {
        let mut a = front_desk();
        a["instructions"] = json!("You answer for the clinic. The caller is {{from}}.");
        a["greeting"] = json!("Thanks for calling!");
        a
    })
    .await;
    // The replay client plays Twilio calling our number.
    let report = replay(&h, "greeting-and-answer", 4.0, None).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let s = session(&h, 0);
    let instructions = s["instructions"].as_str().unwrap();
    assert!(instructions.starts_with("You answer for the clinic. The caller is +1555"), "{s}");
    assert_eq!(s["audio"]["output"]["voice"], "cedar");
    let names = tool_names(&s);
    for tool in ["lookup_patient", "transfer_call", "report_outcome", "end_call"] {
        assert!(names.iter().any(|n| n == tool), "{tool} offered: {names:?}");
    }
    let calls = get(&h, "calls?direction=inbound").await;
    let c = &calls["calls"][0];
    assert_eq!((c["agent_id"].as_str(), c["agent_version"].as_i64()), (Some(id.as_str()), Some(1)), "{c}");
    assert_eq!(c["max_duration_s"], 600);

    // A second call, live while the agent is edited: it keeps version 1; the next call gets 2.
    let twiml = ring(&h, "+15553330000").await;
    let live = call_id_of(&twiml);
    let (_, params) = voxbridge::providers::twilio::twiml::parse_connect_stream(&twiml).unwrap();
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut ws = connect_media(h.addr, None).await.expect("upgrade");
    common::send(&mut ws, start_msg(&p)).await;
    let mock = h.mock.clone().unwrap();
    assert!(
        eventually(std::time::Duration::from_secs(5), || mock.log.count() >= 2
            && !mock.log.get(1).unwrap().lock().unwrap().session_updates.is_empty())
        .await,
        "the live call's session is configured"
    );
    let patch = json!({"instructions": "Version two, caller {{from}}."});
    let (status, edited) = send(&h, reqwest::Method::PATCH, &format!("agents/{id}"), Some(patch)).await;
    assert_eq!((status, edited["version"].as_i64()), (200, Some(2)), "{edited}");
    let during = get(&h, &format!("calls/{live}")).await;
    assert_eq!(during["agent_version"], 1);
    assert_eq!(during["instructions"], "You answer for the clinic. The caller is +15553330000.");
    assert_eq!(session(&h, 1)["instructions"], "You answer for the clinic. The caller is +15553330000.");
    drop(ws);
    let next = call_id_of(&ring(&h, "+15554440000").await);
    let after = get(&h, &format!("calls/{next}")).await;
    assert_eq!(
        (after["agent_version"].as_i64(), after["instructions"].as_str()),
        (Some(2), Some("Version two, caller +15554440000."))
    );
    // Unbound, the number's calls get the server's defaults again.
    assert_eq!(send(&h, reqwest::Method::DELETE, &format!("numbers/{OUR_NUMBER}"), None).await.0, 204);
    let plain = call_id_of(&ring(&h, "+15554440001").await);
    let plain = get(&h, &format!("calls/{plain}")).await;
    assert!(plain["agent_id"].is_null() && plain["instructions"].is_null(), "{plain}");
}

/// What the business's inbound webhook answers (`None`: never).
type Answer = Arc<Mutex<Option<Value>>>;
/// What it was sent: each body and its signature header.
type Seen = Arc<Mutex<Vec<(Value, String)>>>;

/// The business's inbound webhook, answering each `call.incoming` with what `answer` holds then.
async fn inbound_webhook(answer: Answer) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/incoming",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (s, answer) = (Arc::clone(&s), answer.lock().unwrap().clone());
            async move {
                let sig = headers.get("voxbridge-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                s.lock().unwrap().push((serde_json::from_str(&body).unwrap_or(Value::Null), sig));
                match answer {
                    Some(a) => axum::Json(a),
                    // A business's CRM that hangs: the server must not wait for it.
                    None => std::future::pending().await,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/incoming", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

async fn with_inbound_webhook(answer: Option<Value>) -> (Harness, Seen, Answer) {
    let answer: Answer = Arc::new(Mutex::new(answer));
    let (url, seen) = inbound_webhook(Arc::clone(&answer)).await;
    let mut c: Config = config(AudioMode::G711);
    c.inbound_webhook_url = Some(url);
    c.inbound_webhook_timeout_ms = 300;
    c.webhook_secret = Some("whsec_test".into());
    c.webhook_allow_private = true;
    (start(c, mock_options()).await, seen, answer)
}

fn history(call: &Value) -> Vec<String> {
    call["history"].as_array().unwrap().iter().filter_map(|e| e["detail"].as_str().map(str::to_string)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbound_webhook_chooses_the_agent_and_its_variables_signed_as_events_are() {
    let (h, seen, answer) = with_inbound_webhook(None).await;
    let _desk = bound_agent(&h, front_desk()).await;
    let (_, vip) = post(&h, "agents", json!({"name": "VIP", "instructions": "Greet {{first_name}} by name."})).await;
    *answer.lock().unwrap() = Some(json!({"agent_id": vip["id"], "variables": {"first_name": "Ada"}}));
    let id = call_id_of(&ring(&h, "+15553330000").await);
    let call = get(&h, &format!("calls/{id}")).await;
    assert_eq!(call["agent_id"], vip["id"], "{call}");
    assert_eq!(call["instructions"], "Greet Ada by name.");
    assert_eq!(call["variables"]["first_name"], "Ada");
    assert!(history(&call).iter().any(|d| d.contains("chosen by the inbound webhook")), "{call}");
    let (body, signature) = seen.lock().unwrap()[0].clone();
    assert_eq!(
        body,
        json!({"event": "call.incoming", "call_id": id, "from": "+15553330000", "to": OUR_NUMBER, "provider": "twilio"})
    );
    let now = voxbridge::store::now_ms() / 1000;
    assert!(
        voxbridge::webhooks::signing::verify("whsec_test", &signature, body.to_string().as_bytes(), now, 300),
        "{signature}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_webhook_that_does_not_answer_in_time_leaves_the_call_to_the_numbers_agent() {
    let (h, seen, _) = with_inbound_webhook(None).await;
    let desk = bound_agent(&h, front_desk()).await;
    let twiml = ring(&h, "+15553330000").await;
    assert!(twiml.contains("<Stream"), "the caller is answered: {twiml}");
    let call = get(&h, &format!("calls/{}", call_id_of(&twiml))).await;
    assert_eq!(call["agent_id"].as_str(), Some(desk.as_str()));
    // `{{clinic}}` had no value (nobody answered with one): left empty, and said.
    assert_eq!(call["instructions"], "You answer for . The caller is +15553330000.");
    let notes = history(&call);
    assert!(notes.iter().any(|d| d.contains("did not answer within 300 ms")), "{notes:?}");
    assert!(notes.iter().any(|d| d.contains("no value for {{clinic}}")), "{notes:?}");
    assert_eq!(seen.lock().unwrap().len(), 1, "asked once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_webhook_can_reject_a_call_which_is_then_not_answered() {
    let (h, seen, _) = with_inbound_webhook(Some(json!({"reject": true}))).await;
    bound_agent(&h, front_desk()).await;
    let twiml = ring(&h, "+15553330000").await;
    assert!(twiml.contains("<Reject") && !twiml.contains("<Stream"), "{twiml}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(get(&h, "calls").await["calls"].as_array().unwrap().is_empty(), "nothing answered, nothing recorded");
    assert_eq!(h.mock.as_ref().unwrap().log.count(), 0, "no model session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_telnyx_call_to_a_bound_number_is_served_by_its_agent() {
    let (api, c) = telnyx_config(AudioMode::G711, voxbridge::providers::telnyx::rest::StreamCodec::Pcmu).await;
    let h = start(c, mock_options()).await;
    let id = bound_agent(&h, front_desk()).await;
    let player = voxbridge::replay::telnyx::TelnyxReplay {
        api: api.clone(),
        signing_key: Some(TELNYX_SECRET),
        shuffle: false,
        dialed: false,
    };
    let report = replay_telnyx(&h, "greeting-and-answer", 4.0, player).await;
    assert_eq!(report.failed_calls, 0, "{:?}", report.errors);
    let s = session(&h, 0);
    assert!(s["instructions"].as_str().unwrap().starts_with("You answer for . The caller is +1555"), "{s}");
    assert!(tool_names(&s).iter().any(|n| n == "lookup_patient"), "{s}");
    let calls = get(&h, "calls?direction=inbound").await;
    assert_eq!(calls["calls"][0]["agent_id"].as_str(), Some(id.as_str()));
    assert_eq!(calls["calls"][0]["provider"], "telnyx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_of_a_thousand_calls_is_created_in_one_request_each_with_its_variables_and_counted() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let (_, agent) =
        post(&h, "agents", json!({"name": "Reminders", "instructions": "Remind {{first_name}} of {{slot}}."})).await;
    let calls: Vec<Value> = (0..1000)
        .map(|i| match i {
            3 => json!({"to": "+15551000003", "variables": {"first_name": "Cy"}}),
            5 => json!({"to": "555", "variables": {"first_name": "E", "slot": "x"}}),
            _ => json!({"to": format!("+1555100{i:04}"), "variables": {"first_name": format!("P{i}"), "slot": "9am"}}),
        })
        .collect();
    let body = json!({"agent_id": agent["id"], "campaign": "spring", "from": OUR_NUMBER, "calls": calls});
    let (status, answer) = post(&h, "calls/batch", body).await;
    assert_eq!(status, 207, "{answer}");
    assert_eq!((answer["created"].as_i64(), answer["failed"].as_i64()), (Some(998), Some(2)), "{}", answer["failed"]);
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    assert!(results.iter().enumerate().all(|(i, r)| r["index"] == i), "in the order given");
    assert_eq!(results[3]["status"], 422);
    assert!(results[3]["error"]["message"].as_str().unwrap().contains("{{slot}}"), "{}", results[3]);
    assert_eq!(results[5]["status"], 422);
    assert!(results[5]["error"]["message"].as_str().unwrap().starts_with("to:"), "{}", results[5]);
    let one = results[999]["id"].as_str().unwrap();
    let c = get(&h, &format!("calls/{one}")).await;
    assert_eq!(c["instructions"], "Remind P999 of 9am.");
    assert_eq!((c["campaign"].as_str(), c["agent_id"].as_str()), (Some("spring"), agent["id"].as_str()));
    let counts = get(&h, "campaigns/spring").await;
    assert_eq!(counts["total"], 998, "{counts}");
    assert_eq!(counts["by_status"]["queued"], 998, "{counts}");
    assert_eq!(counts["paused"], false);
    // Canceled calls are counted by how they ended.
    assert_eq!(post(&h, "campaigns/spring/cancel", json!({})).await.0, 200);
    let counts = get(&h, "campaigns/spring").await;
    assert_eq!(
        (counts["by_status"]["canceled"].as_i64(), counts["by_end_reason"]["canceled"].as_i64()),
        (Some(998), Some(998))
    );
    // A batch that is not one: 422 naming what is wrong.
    for (body, field) in [
        (json!({"calls": []}), "calls"),
        (json!({"calls": vec![json!({"to": "+15551230001"}); 1001]}), "calls"),
        (json!({"calls": [{"to": "+15551230001"}], "surprise": 1}), "surprise"),
    ] {
        let (status, e) = post(&h, "calls/batch", body).await;
        assert_eq!(status, 422, "{e}");
        assert!(e["error"]["message"].as_str().unwrap().starts_with(&format!("{field}:")), "{e}");
    }
}
