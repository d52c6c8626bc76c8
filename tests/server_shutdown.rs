//! SIGTERM on `glimpse serve`: answers in flight finish (a streamed one to its `[DONE]`),
//! new requests are refused with 503 `shutting_down`, and the process exits 0; answers
//! still running after `--shutdown-timeout` end with a `shutting_down` error event.
#![cfg(unix)]
use crate::server_support;

use std::time::Duration;

use serde_json::json;
use server_support::*;

#[test]
fn sigterm_finishes_answers_in_flight_refuses_new_ones_and_exits_0() {
    let mut server = TestServer::start(&["--shutdown-timeout", "60", "--ctx", "32768"]);
    // Long enough to be still running while the checks below are made on a fast CPU
    // (400 tokens of the tiny model take 0.25 s on a Zen 4 core).
    let request = server.long_greedy_request(3000);
    let expected = server.complete(&request)["choices"][0]["message"]["content"]
        .as_str()
        .expect("an answer")
        .to_owned();
    let mut stream = server.open_stream(&request);
    let mut events = vec![stream.next_event().expect("the stream starts")];
    let base = server.base.clone();
    let terminate = std::thread::spawn(move || {
        let status = server.terminate(Duration::from_secs(60));
        (status, server)
    });
    // The stream is still running, so the server is still up, refusing new work once the
    // signal is handled (asked until then, not after a fixed sleep).
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while agent
        .get(format!("{base}/health"))
        .call()
        .expect("the server is still up while an answer is in flight")
        .status()
        .as_u16()
        != 503
    {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGTERM not handled in 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for (method, path) in [("GET", "/health"), ("POST", "/v1/chat/completions")] {
        let mut answer = match method {
            "GET" => agent.get(format!("{base}{path}")).call(),
            _ => agent
                .post(format!("{base}{path}"))
                .send(json!({"messages": [{"role": "user", "content": "Hi"}]}).to_string()),
        }
        .expect("the server is still up while an answer is in flight");
        let body = answer.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(answer.status().as_u16(), 503, "{path}: {body}");
        assert!(body.contains("shutting_down"), "{body}");
    }
    while let Some(event) = stream.next_event() {
        events.push(event);
    }
    assert!(stream.saw_done, "the stream in flight ended with [DONE]");
    assert_eq!(
        streamed_text(&events),
        expected,
        "the answer in flight was whole"
    );
    let (status, _server) = terminate.join().expect("terminating");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
}

#[test]
fn answers_still_running_after_the_grace_period_are_interrupted_cleanly() {
    let mut server = TestServer::start(&["--shutdown-timeout", "1", "--ctx", "32768"]);
    let mut request = server.long_greedy_request(500);
    request["max_tokens"] = json!(30000);
    let mut stream = server.open_stream(&request);
    stream.next_event().expect("the stream starts");
    let terminate = std::thread::spawn(move || {
        let status = server.terminate(Duration::from_secs(30));
        (status, server)
    });
    let mut last = None;
    while let Some(event) = stream.next_event() {
        last = Some(event);
    }
    assert!(
        stream.saw_done,
        "the interrupted stream still ends with [DONE]"
    );
    let last = last.expect("events after the first");
    assert_eq!(last["error"]["code"], "shutting_down", "{last}");
    let (status, _server) = terminate.join().expect("terminating");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
}
