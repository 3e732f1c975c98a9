//! Ring-time pre-warm across several machines on Fly.io. The machine that dials an outbound call
//! opens its model session while the phone rings (`call::prewarm`), but the carrier's media
//! socket lands wherever Fly's proxy sends it. So the stream URL names the dialling machine
//! (Twilio: a path segment, `/media/twilio/{machine}`, as a Twilio stream URL takes no query;
//! Telnyx: `machine=` beside the token), and a machine that receives a stream named for another
//! answers the upgrade with `fly-replay: prefer_instance=<machine>`: the proxy replays it there,
//! or — that machine gone — to any machine. A replayed request carries `fly-replay-src` and is
//! never steered again: it is served where it lands (which opens its own session, as before).
//! Off Fly (no `FLY_MACHINE_ID`) no URL names a machine and nothing is steered.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::call::admission::Arrival;
use crate::config::Config;

/// The header Fly's proxy acts on, and the one it adds to the request it replays.
const REPLAY: &str = "fly-replay";
const REPLAYED_FROM: &str = "fly-replay-src";

/// The machine an outbound call's stream URL names: this one, on Fly with pre-warm on.
pub fn dialling_machine(config: &Config) -> Option<String> {
    let id = config.fly_machine_id.trim();
    (config.prewarm && is_machine_id(id)).then(|| id.to_string())
}

/// A machine id as Fly writes them (lowercase hex, a few dozen characters at most); anything
/// else found in a URL is ignored rather than echoed into a header.
pub fn is_machine_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// What to do with a stream upgrade that names `named` (if anything), on a machine that is
/// `own` (if on Fly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Steer {
    /// Serve it here, as arrived.
    Serve(Arrival),
    /// Have Fly's proxy replay it to this machine.
    ReplayTo(String),
}

pub fn steer(own: &str, named: Option<&str>, headers: &HeaderMap) -> Steer {
    let own = own.trim();
    match named.filter(|n| is_machine_id(n)) {
        Some(named) if !own.is_empty() && named == own => Steer::Serve(Arrival::Own),
        // Off Fly there is no proxy to replay it; once replayed, it stays where it landed.
        Some(named) if !own.is_empty() && !headers.contains_key(REPLAYED_FROM) => Steer::ReplayTo(named.to_string()),
        _ => Steer::Serve(Arrival::New),
    }
}

/// The answer Fly's proxy turns into a replay to `machine` (never seen by the carrier).
pub fn replay_to(machine: &str) -> Response {
    let mut resp = (StatusCode::CONFLICT, format!("this stream belongs to machine {machine}\n")).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("prefer_instance={machine}")) {
        resp.headers_mut().insert(REPLAY, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_named_for_another_machine_is_replayed_there_once_and_only_on_fly() {
        let none = HeaderMap::new();
        let mut replayed = HeaderMap::new();
        replayed.insert(REPLAYED_FROM, HeaderValue::from_static("instance=3d8d9e2b7e1289;region=iad;t=1"));
        assert_eq!(steer("3d8d9e2b7e1289", Some("91857d2f653e83"), &none), Steer::ReplayTo("91857d2f653e83".into()));
        assert_eq!(steer("3d8d9e2b7e1289", Some("3d8d9e2b7e1289"), &none), Steer::Serve(Arrival::Own));
        assert_eq!(steer("3d8d9e2b7e1289", Some("3d8d9e2b7e1289"), &replayed), Steer::Serve(Arrival::Own));
        // Replayed once (the named machine was gone): served where it landed.
        assert_eq!(steer("3d8d9e2b7e1289", Some("91857d2f653e83"), &replayed), Steer::Serve(Arrival::New));
        assert_eq!(steer("3d8d9e2b7e1289", None, &none), Steer::Serve(Arrival::New));
        // Off Fly: nothing to replay through.
        assert_eq!(steer("", Some("91857d2f653e83"), &none), Steer::Serve(Arrival::New));
        // Not a machine id: ignored, never echoed into a header.
        assert_eq!(steer("3d8d9e2b7e1289", Some("x;instance=evil"), &none), Steer::Serve(Arrival::New));
        assert_eq!(steer("3d8d9e2b7e1289", Some(""), &none), Steer::Serve(Arrival::New));
    }

    #[test]
    fn the_replay_answer_names_the_machine_for_the_proxy() {
        let resp = replay_to("91857d2f653e83");
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert_eq!(resp.headers()[REPLAY], "prefer_instance=91857d2f653e83");
    }

    #[test]
    fn only_a_machine_on_fly_with_pre_warm_names_itself() {
        let mut c = Config::defaults();
        assert_eq!(dialling_machine(&c), None);
        c.fly_machine_id = "3d8d9e2b7e1289".into();
        assert_eq!(dialling_machine(&c).as_deref(), Some("3d8d9e2b7e1289"));
        c.prewarm = false;
        assert_eq!(dialling_machine(&c), None, "no session to steer to");
    }
}
