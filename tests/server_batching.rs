//! Many users on one server: conversations sent at once to `serve --parallel 4` share
//! model steps (continuous batching, prompts cut into 16-token pieces) and must each get
//! transformers' greedy answer, as they do alone; streams report prompt progress when asked.
use crate::common;
use crate::server_support;

use serde_json::json;
use server_support::*;

#[test]
fn conversations_sent_eight_at_once_to_four_slots_get_the_transformers_answers() {
    let server = TestServer::start_with_env(
        &["--parallel", "4", "--max-queue", "16"],
        &[("GLIMPSE_PROMPT_CHUNK", "16")],
    );
    let cases = common::cases("tiny-untied");
    // Every fixture conversation, and again until there are at least eight requests.
    let requests: Vec<_> = cases.iter().cycle().take(cases.len().max(8) + 3).collect();
    std::thread::scope(|scope| {
        let answers: Vec<_> = requests
            .iter()
            .enumerate()
            .map(|(i, case)| {
                let server = &server;
                scope.spawn(move || {
                    let request = greedy_request(case, &data_uri_part);
                    let text = if i % 2 == 0 {
                        let body = server.complete(&request);
                        body["choices"][0]["message"]["content"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned()
                    } else {
                        streamed_text(&server.stream(&request))
                    };
                    (case.name.clone(), text, expected_text(case))
                })
            })
            .collect();
        for answer in answers {
            let (name, got, want) = answer.join().expect("client thread");
            assert_eq!(got, want, "case {name}");
        }
    });
    assert!(
        server.metric("glimpse_batch_steps_total{sequences=\"4\"}") > 0.0,
        "no step carried four sequences"
    );
}

#[test]
fn a_stream_reports_prompt_progress_when_asked() {
    let server = TestServer::start_with_env(&[], &[("GLIMPSE_PROMPT_CHUNK", "16")]);
    let case = case("one_image_noresize");
    let mut request = greedy_request(&case, &data_uri_part);
    request["return_progress"] = json!(true);
    let events = server.stream(&request);
    let progress: Vec<_> = events
        .iter()
        .filter_map(|e| e.get("prompt_progress"))
        .collect();
    assert!(!progress.is_empty(), "no prompt_progress chunk: {events:?}");
    let total = case.input_ids.len() as u64;
    let mut last = 0;
    for p in &progress {
        assert_eq!(p["total"], total, "{p}");
        assert_eq!(p["images"], 1, "{p}");
        let processed = p["processed"].as_u64().unwrap_or(u64::MAX);
        assert!(processed >= last && processed < total, "{p}");
        last = processed;
    }
    assert!(
        progress.iter().any(|p| p["processed"].as_u64() > Some(0)),
        "the prompt was read in one piece: {progress:?}"
    );
    assert_eq!(streamed_text(&events), expected_text(&case));
    // Without the opt-in, no progress chunk is sent.
    request["return_progress"] = json!(false);
    let events = server.stream(&request);
    assert!(events.iter().all(|e| e.get("prompt_progress").is_none()));
}
