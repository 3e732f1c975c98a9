//! `GET /v1/openapi.json` describes what the server really does: every `/v1` route it serves is
//! in the document (and nothing it does not serve), and real answers — calls, pages,
//! transcripts, metrics, campaign actions, errors — validate against the schemas the document
//! gives for their status, with no field the document does not name. Real server on loopback.

mod common;

use common::*;
use serde_json::{Value, json};
use voxbridge::config::AudioMode;

async fn doc(base: &str) -> Value {
    let resp = reqwest::get(format!("{base}/v1/openapi.json")).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Every object schema of the components made strict: an answer with a field the document does
/// not name fails (utoipa leaves objects open).
fn strict(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                    m.insert("additionalProperties".into(), false.into());
                }
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// Checks `body` against the schema the document gives `method path` for `status`.
fn check(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is documented");
    let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} documents its {status} answer: {}", op["responses"]);
    let root = json!({"allOf": [schema], "components": strict(doc["components"].clone())});
    let validator = jsonschema::validator_for(&root).expect("the document's schema compiles");
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} {status}: {errors:?}\n{body:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_v1_route_and_real_answers_validate_against_it() {
    let mut c = config(AudioMode::G711);
    c.twilio_from_number = Some("+15557654321".into());
    // Events are logged (their delivery fails here: no network), so the log has something to show.
    c.webhook_url = Some("https://hooks.example.com/voxbridge".into());
    let h = start(c, mock_options()).await;
    let base = format!("http://{}", h.addr);
    let doc = doc(&base).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);

    // Every route of the API (README, contract) is documented with its methods ...
    let routes = [
        ("post", "/v1/calls"),
        ("get", "/v1/calls"),
        ("get", "/v1/calls/{id}"),
        ("patch", "/v1/calls/{id}"),
        ("post", "/v1/calls/{id}/cancel"),
        ("get", "/v1/calls/{id}/transcript"),
        ("get", "/v1/metrics"),
        ("post", "/v1/campaigns/{name}/{action}"),
        ("get", "/v1/calls/{id}/events"),
        ("get", "/v1/calls/{id}/recording"),
        ("post", "/v1/events/{id}/redeliver"),
        ("get", "/v1/openapi.json"),
        ("post", "/v1/calls/batch"),
        ("get", "/v1/campaigns/{name}"),
        ("post", "/v1/agents"),
        ("get", "/v1/agents"),
        ("get", "/v1/agents/{id}"),
        ("patch", "/v1/agents/{id}"),
        ("delete", "/v1/agents/{id}"),
        ("put", "/v1/numbers/{e164}"),
        ("get", "/v1/numbers"),
        ("delete", "/v1/numbers/{e164}"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in routes {
        assert!(paths[path][method].is_object(), "{method} {path} documented");
    }
    // ... and nothing else: each documented operation is served (no 404 / 405 from the router).
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, routes.len(), "{:?}", paths.keys().collect::<Vec<_>>());
    let http = http_client();
    for (method, path) in routes {
        let url = format!(
            "{base}{}",
            path.replace("{id}", "c_0000000000000000")
                .replace("{name}/{action}", "x/pause")
                .replace("{name}", "x")
                .replace("{e164}", "+15550000000")
        );
        let req = http.request(method.to_uppercase().parse().unwrap(), url).header("content-type", "application/json");
        let status = req.body("{}").send().await.unwrap().status().as_u16();
        assert_ne!(status, 405, "{method} {path} is served");
    }

    // Real answers validate.
    let resp = http
        .post(format!("{base}/v1/calls"))
        .json(&json!({"to": "+15551230001", "metadata": {"crm": "42"}, "campaign": "spring",
            "call_window": {"timezone": "UTC", "start": "00:00", "end": "23:59"}, "max_cost_usd": 1.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let call: Value = resp.json().await.unwrap();
    check(&doc, "post", "/v1/calls", 201, &call);
    let id = call["id"].as_str().unwrap();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let r = http.get(format!("http://{}{path}", h.addr)).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, one) = get(format!("/v1/calls/{id}")).await;
    assert!(one["history"].is_array() && one["queue_position"].is_number(), "{one}");
    check(&doc, "get", "/v1/calls/{id}", status, &one);
    let (status, page) = get("/v1/calls?limit=5".into()).await;
    check(&doc, "get", "/v1/calls", status, &page);
    let (status, transcript) = get(format!("/v1/calls/{id}/transcript")).await;
    check(&doc, "get", "/v1/calls/{id}/transcript", status, &transcript);
    let (status, metrics) = get("/v1/metrics".into()).await;
    check(&doc, "get", "/v1/metrics", status, &metrics);
    let (status, events) = get(format!("/v1/calls/{id}/events")).await;
    assert_eq!(events["events"][0]["type"], "call.queued", "{events}");
    check(&doc, "get", "/v1/calls/{id}/events", status, &events);
    let event_id = events["events"][0]["id"].as_str().unwrap();
    let redelivered = http.post(format!("{base}/v1/events/{event_id}/redeliver")).send().await.unwrap();
    assert_eq!(redelivered.status(), 202);
    check(&doc, "post", "/v1/events/{id}/redeliver", 202, &redelivered.json().await.unwrap());
    let (status, missing) = get("/v1/calls/c_ffffffffffffffff".into()).await;
    assert_eq!(status, 404);
    check(&doc, "get", "/v1/calls/{id}", 404, &missing);
    let (status, bad) = get("/v1/calls?bogus=1".into()).await;
    check(&doc, "get", "/v1/calls", status, &bad);

    let patched = http.patch(format!("{base}/v1/calls/{id}")).json(&json!({"priority": 5})).send().await.unwrap();
    assert_eq!(patched.status(), 200);
    check(&doc, "patch", "/v1/calls/{id}", 200, &patched.json().await.unwrap());
    let fixed = http.patch(format!("{base}/v1/calls/{id}")).json(&json!({"campaign": "b"})).send().await.unwrap();
    assert_eq!(fixed.status(), 422, "a campaign cannot be changed (before, it was silently ignored)");
    check(&doc, "patch", "/v1/calls/{id}", 422, &fixed.json().await.unwrap());
    for action in ["pause", "resume", "cancel"] {
        let r = http.post(format!("{base}/v1/campaigns/spring/{action}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        check(&doc, "post", "/v1/campaigns/{name}/{action}", 200, &r.json().await.unwrap());
    }
    let (status, counts) = get("/v1/campaigns/spring".into()).await;
    assert_eq!(counts["by_status"]["canceled"], 1, "{counts}");
    check(&doc, "get", "/v1/campaigns/{name}", status, &counts);
    let batch = json!({"campaign": "fall", "calls": [{"to": "+15551230002"}, {"to": "nope"}]});
    let r = http.post(format!("{base}/v1/calls/batch")).json(&batch).send().await.unwrap();
    assert_eq!(r.status(), 207);
    check(&doc, "post", "/v1/calls/batch", 207, &r.json().await.unwrap());

    // Agents and numbers.
    let agent = json!({"name": "Desk", "instructions": "Hi {{name}}", "voice": "cedar", "max_duration_s": 300,
        "tools": [{"name": "lookup", "url": "https://crm.example.com/x"}], "call_window": {"timezone": "UTC", "start": "09:00", "end": "17:00"}});
    let r = http.post(format!("{base}/v1/agents")).json(&agent).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let agent: Value = r.json().await.unwrap();
    check(&doc, "post", "/v1/agents", 201, &agent);
    let agent_id = agent["id"].as_str().unwrap();
    let (status, list) = get("/v1/agents".into()).await;
    check(&doc, "get", "/v1/agents", status, &list);
    let (status, one) = get(format!("/v1/agents/{agent_id}")).await;
    check(&doc, "get", "/v1/agents/{id}", status, &one);
    let r = http.patch(format!("{base}/v1/agents/{agent_id}")).json(&json!({"voice": null})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    check(&doc, "patch", "/v1/agents/{id}", 200, &r.json().await.unwrap());
    let r =
        http.put(format!("{base}/v1/numbers/+15557654321")).json(&json!({"agent_id": agent_id})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    check(&doc, "put", "/v1/numbers/{e164}", 200, &r.json().await.unwrap());
    let (status, numbers) = get("/v1/numbers".into()).await;
    check(&doc, "get", "/v1/numbers", status, &numbers);
    let r = http.delete(format!("{base}/v1/agents/{agent_id}")).send().await.unwrap();
    assert_eq!(r.status(), 409);
    check(&doc, "delete", "/v1/agents/{id}", 409, &r.json().await.unwrap());

    let canceled = http.post(format!("{base}/v1/calls/{id}/cancel")).send().await.unwrap();
    assert_eq!(canceled.status(), 409, "the campaign's cancel already ended it");
    check(&doc, "post", "/v1/calls/{id}/cancel", 409, &canceled.json().await.unwrap());
    let invalid = http.post(format!("{base}/v1/calls")).json(&json!({"to": "nope"})).send().await.unwrap();
    assert_eq!(invalid.status(), 422);
    check(&doc, "post", "/v1/calls", 422, &invalid.json().await.unwrap());

    // The check can fail: an answer with a field the document does not name is refused.
    let mut extra = call.clone();
    extra["undocumented"] = 1.into();
    let result = std::panic::catch_unwind(|| check(&doc, "post", "/v1/calls", 201, &extra));
    assert!(result.is_err(), "an undocumented field fails validation");
}

/// The document is valid OpenAPI 3.1 by a real validator (`scripts/check_openapi.py`, the
/// `openapi-spec-validator` package, which `.ci/run` installs; without it on a developer machine
/// the test says so and passes, under CI it fails), and it describes the events sent to the
/// user's endpoint under `webhooks`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_3_1_and_describes_the_events() {
    let h = start(config(AudioMode::G711), mock_options()).await;
    let d = doc(&format!("http://{}", h.addr)).await;
    let event = &d["webhooks"]["callEvent"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(event["$ref"], "#/components/schemas/CallEvent", "{}", d["webhooks"]);
    let schema = &d["components"]["schemas"]["CallEvent"]["properties"];
    for field in ["id", "type", "created_at", "data"] {
        assert!(schema.get(field).is_some(), "CallEvent.{field}: {schema}");
    }
    let path = std::env::temp_dir().join(format!("vb-openapi-{}.json", rand::random::<u64>()));
    std::fs::write(&path, d.to_string()).unwrap();
    let Some(out) = python_oracle("check_openapi.py", &path, "openapi-spec-validator") else { return };
    assert!(out.status.success(), "not valid OpenAPI 3.1:\n{}", String::from_utf8_lossy(&out.stdout));
}
