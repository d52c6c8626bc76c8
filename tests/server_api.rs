//! `glimpse serve` over HTTP, on the tiny-untied fixture: greedy answers and first-token
//! logprobs equal transformers', streamed and non-streamed alike, for every image form
//! (data URI, raw base64, URL, `image` parts) and several images; stop strings, seeds and
//! penalties act; a follow-up turn reuses the KV cache and skips the vision encoder.
use crate::common;
use crate::server_support;

use std::path::Path;

use serde_json::{json, Value};
use server_support::*;

#[test]
fn greedy_answers_over_http_equal_the_transformers_fixture() {
    let server = TestServer::start(&[]);
    for case in common::cases("tiny-untied") {
        let body = server.complete(&greedy_request(&case, &data_uri_part));
        let choice = &body["choices"][0];
        assert_eq!(
            choice["message"]["content"],
            expected_text(&case),
            "case {}",
            case.name
        );
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(
            choice["finish_reason"],
            finish_reason(&case),
            "case {}",
            case.name
        );
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(
            body["usage"]["prompt_tokens"],
            case.input_ids.len(),
            "case {}",
            case.name
        );
        assert_eq!(body["usage"]["completion_tokens"], answer_tokens(&case));
        assert_eq!(
            body["usage"]["total_tokens"],
            case.input_ids.len() + answer_tokens(&case)
        );
    }
}

#[test]
fn first_token_logprobs_equal_the_fixture() {
    let server = TestServer::start(&[]);
    let case = case("one_image_noresize");
    let mut request = greedy_request(&case, &data_uri_part);
    request["logprobs"] = json!(true);
    request["top_logprobs"] = json!(5);
    let body = server.complete(&request);
    let content = body["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("logprobs.content");
    assert_eq!(content.len(), answer_tokens(&case));

    let expected =
        common::read_f32_tensors(&common::fixtures().join("tiny-untied/expected.safetensors"));
    let (_, final_logprobs) = &expected[&format!("{}.final_logprobs", case.name)];
    let first = &content[0];
    let want = final_logprobs[case.greedy_tokens[0] as usize];
    let got = first["logprob"].as_f64().expect("logprob") as f32;
    assert!(
        (got - want).abs() < 1e-3,
        "first token logprob {got} vs fixture {want}"
    );

    let mut sorted = final_logprobs.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let top = first["top_logprobs"].as_array().expect("top_logprobs");
    assert_eq!(top.len(), 5);
    for (alternative, want) in top.iter().zip(&sorted) {
        let got = alternative["logprob"].as_f64().expect("logprob") as f32;
        assert!(
            (got - want).abs() < 1e-3,
            "top logprob {got} vs fixture {want}"
        );
    }
    assert_eq!(
        top[0]["token"], first["token"],
        "greedy picks the most likely token"
    );

    let bytes: Vec<u8> = content
        .iter()
        .flat_map(|t| t["bytes"].as_array().expect("bytes").clone())
        .map(|b| b.as_u64().expect("byte") as u8)
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        body["choices"][0]["message"]["content"]
            .as_str()
            .expect("text"),
        "the tokens' bytes spell the answer"
    );
}

#[test]
fn streamed_answer_equals_the_fixture_and_ends_with_usage() {
    let server = TestServer::start(&[]);
    let case = case("one_image_resize");
    let mut request = greedy_request(&case, &data_uri_part);
    request["stream_options"] = json!({"include_usage": true});
    request["logprobs"] = json!(true);
    let events = server.stream(&request);
    assert_eq!(streamed_text(&events), expected_text(&case));
    assert!(events
        .iter()
        .all(|e| e["object"] == "chat.completion.chunk"));
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed_logprobs: usize = events
        .iter()
        .filter_map(|e| e["choices"][0]["logprobs"]["content"].as_array())
        .map(Vec::len)
        .sum();
    assert_eq!(streamed_logprobs, answer_tokens(&case));

    let usage_chunk = events.last().expect("events");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], case.input_ids.len());
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"],
        answer_tokens(&case)
    );
    let finish = &events[events.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], finish_reason(&case));
    for field in [
        "vision_ms",
        "prefill_ms",
        "decode_ms",
        "cached_prompt_tokens",
    ] {
        assert!(
            finish["timings"][field].is_number(),
            "timings.{field}: {finish}"
        );
    }

    let mut plain = greedy_request(&case, &data_uri_part);
    plain["stream"] = json!(true);
    let events = server.stream(&plain);
    assert!(
        events
            .iter()
            .all(|e| e.get("usage").is_none_or(Value::is_null)),
        "no usage chunk unless asked for"
    );
}

/// Turns a fixture image path into the content part to send.
type ImagePart<'a> = Box<dyn Fn(&Path) -> Value + 'a>;

#[test]
fn every_image_form_gives_the_fixture_answer() {
    // The image host is on loopback, which only a trusting server fetches from.
    let server = TestServer::start(&["--image-url-allow-private"]);
    let case = case("one_image_noresize");
    let expected = expected_text(&case);
    let image_path = common::fixtures().join("images/noresize_256x320.png");
    let host = host_files(vec![(
        "/picture.png",
        std::fs::read(&image_path).expect("fixture image"),
    )]);
    let url = format!("{host}/picture.png");
    let forms: Vec<(&str, ImagePart)> = vec![
        ("image_url data URI", Box::new(data_uri_part)),
        (
            "image_url raw base64",
            Box::new(|p| json!({"type": "image_url", "image_url": {"url": base64_of(p)}})),
        ),
        (
            "image_url http URL",
            Box::new(|_| json!({"type": "image_url", "image_url": {"url": url.clone()}})),
        ),
        (
            "image data URI",
            Box::new(|p| json!({"type": "image", "image": data_uri(p)})),
        ),
        (
            "image raw base64",
            Box::new(|p| json!({"type": "image", "image": base64_of(p)})),
        ),
        (
            "image http URL",
            Box::new(|_| json!({"type": "image", "image": url.clone()})),
        ),
    ];
    for (form, part) in &forms {
        let body = server.complete(&greedy_request(&case, part.as_ref()));
        assert_eq!(body["choices"][0]["message"]["content"], expected, "{form}");
    }
}

#[test]
fn two_images_in_one_message_from_two_sources_give_the_fixture_answer() {
    let server = TestServer::start(&["--image-url-allow-private"]);
    let case = case("two_images_text_between");
    let second = common::fixtures().join("images/resize_300x200.jpg");
    let host = host_files(vec![(
        "/second.jpg",
        std::fs::read(&second).expect("image"),
    )]);
    let part = |path: &Path| {
        if path == second {
            json!({"type": "image_url", "image_url": {"url": format!("{host}/second.jpg")}})
        } else {
            data_uri_part(path)
        }
    };
    let body = server.complete(&greedy_request(&case, &part));
    assert_eq!(
        body["choices"][0]["message"]["content"],
        expected_text(&case)
    );
    assert_eq!(body["timings"]["images_encoded"], 2);
}

#[test]
fn follow_up_turn_reuses_the_cache_and_skips_the_vision_encoder() {
    let server = TestServer::start(&["--parallel", "1"]);
    let image = common::fixtures().join("images/noresize_256x320.png");
    let first_turn = json!([{"role": "user", "content": [
        data_uri_part(&image),
        {"type": "text", "text": "Describe this image."}
    ]}]);
    let first = server.complete(&json!({
        "messages": first_turn, "temperature": 0, "max_tokens": 12
    }));
    let first_prompt = first["usage"]["prompt_tokens"]
        .as_u64()
        .expect("prompt_tokens");
    let answer = first["choices"][0]["message"]["content"]
        .as_str()
        .expect("text");
    let encoded_after_first = server.metric("glimpse_images_encoded_total");
    assert_eq!(encoded_after_first, 1.0);

    let mut conversation = first_turn.as_array().expect("messages").clone();
    conversation.push(json!({"role": "assistant", "content": answer}));
    conversation.push(json!({"role": "user", "content": "And which colors are in it?"}));
    let second = server.complete(&json!({
        "messages": conversation, "temperature": 0, "max_tokens": 12
    }));
    let timings = &second["timings"];
    let cached = timings["cached_prompt_tokens"]
        .as_u64()
        .expect("cached_prompt_tokens");
    assert!(
        cached >= first_prompt,
        "turn 2 reused {cached} tokens, turn 1's prompt was {first_prompt}"
    );
    assert_eq!(
        second["usage"]["prompt_tokens_details"]["cached_tokens"],
        cached
    );
    assert_eq!(timings["images_encoded"], 0, "{timings}");
    assert_eq!(
        server.metric("glimpse_images_encoded_total"),
        encoded_after_first,
        "the vision encoder ran again"
    );
    assert!(server.metric("glimpse_cached_prompt_tokens_total") >= first_prompt as f64);
}

#[test]
fn stop_string_split_across_tokens_ends_the_answer_unseen() {
    let server = TestServer::start(&[]);
    let case = case("text_only");
    let full = expected_text(&case);
    let stop = stop_across_a_token_boundary(&case, &full);
    let expected = &full[..full.find(&stop).expect("stop occurs in the answer")];
    let mut request = greedy_request(&case, &data_uri_part);
    request["stop"] = json!(["never-appears", stop]);

    let body = server.complete(&request);
    assert_eq!(body["choices"][0]["message"]["content"], expected);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");

    let events = server.stream(&request);
    assert_eq!(streamed_text(&events), expected);
    assert_eq!(
        events.last().expect("events")["choices"][0]["finish_reason"],
        "stop"
    );
}

/// Four characters of `full` straddling the boundary between two whole tokens.
fn stop_across_a_token_boundary(case: &common::Case, full: &str) -> String {
    let bytes = std::fs::read(common::tokenizer_json()).expect("tokenizer.json");
    let tokenizer = glimpse::chat::Tokenizer::from_json_bytes(&bytes).expect("tokenizer");
    (4..answer_tokens(case) - 2)
        .find_map(|n| {
            let prefix = tokenizer.decode(&case.greedy_tokens[..n], true).ok()?;
            let chars: Vec<char> = full.chars().collect();
            let at = prefix.chars().count();
            let clean = full.starts_with(&prefix) && !prefix.contains('\u{fffd}');
            let stop: String = chars.get(at.checked_sub(2)?..at + 2)?.iter().collect();
            (clean && !stop.contains('\u{fffd}') && stop.trim() == stop).then_some(stop)
        })
        .expect("a clean token boundary in the fixture answer")
}

#[test]
fn a_seed_makes_sampling_repeatable() {
    let server = TestServer::start(&[]);
    let request = |seed: u64| {
        json!({
            "messages": [{"role": "user", "content": "Tell me a story."}],
            "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": seed, "max_tokens": 16
        })
    };
    let text = |seed| {
        server.complete(&request(seed))["choices"][0]["message"]["content"]
            .as_str()
            .expect("text")
            .to_owned()
    };
    let first = text(7);
    assert_eq!(text(7), first, "same seed, same answer");
    let others: Vec<String> = (8..12).map(text).collect();
    assert!(
        others.iter().any(|o| *o != first),
        "other seeds all gave {first:?}"
    );
}

#[test]
fn repetition_penalty_changes_a_greedy_answer_that_repeats() {
    let server = TestServer::start(&[]);
    let case = case("text_only");
    let mut request = greedy_request(&case, &data_uri_part);
    request["repetition_penalty"] = json!(10.0);
    let body = server.complete(&request);
    assert_ne!(
        body["choices"][0]["message"]["content"],
        expected_text(&case)
    );
    request["repetition_penalty"] = json!(1.0);
    request["presence_penalty"] = json!(0.0);
    let body = server.complete(&request);
    assert_eq!(
        body["choices"][0]["message"]["content"],
        expected_text(&case)
    );
}

#[test]
fn ignore_eos_runs_past_the_end_of_turn_to_max_tokens() {
    let server = TestServer::start(&[]);
    let case = case("stops_early");
    assert_eq!(
        finish_reason(&case),
        "stop",
        "the fixture's answer ends its turn"
    );
    let mut request = greedy_request(&case, &data_uri_part);
    let max_tokens = answer_tokens(&case) + 6;
    request["max_tokens"] = json!(max_tokens);
    request["ignore_eos"] = json!(true);
    let body = server.complete(&request);
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], max_tokens);
    let text = choice["message"]["content"].as_str().unwrap_or_default();
    assert!(
        text.starts_with(&expected_text(&case)) && text.len() > expected_text(&case).len(),
        "{text:?}"
    );
}
