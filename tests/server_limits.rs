//! `glimpse serve` refusals and limits, driven over HTTP: API key (401), body size (413,
//! also for an absurd declared length), bad fields and images (400/422), prompt longer
//! than the context (400 with both numbers), a full queue (429 + Retry-After) and a
//! client that disconnects mid-stream freeing its slot; plus health, models, metrics and
//! the web page's presence per build.
use crate::common;
use crate::server_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use server_support::*;

fn hello() -> serde_json::Value {
    json!({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2})
}

fn image_request(parts: Vec<serde_json::Value>) -> serde_json::Value {
    let mut content = parts;
    content.push(json!({"type": "text", "text": "What is it?"}));
    json!({"messages": [{"role": "user", "content": content}], "max_tokens": 2})
}

fn fixture_image() -> std::path::PathBuf {
    common::fixtures().join("images/noresize_256x320.png")
}

#[test]
fn api_key_is_required_as_a_bearer_token() {
    let server = TestServer::start(&["--api-key", "s3cret"]);
    let body = hello().to_string();
    let path = "/v1/chat/completions";
    server
        .post_raw(path, body.as_bytes(), None)
        .assert_error(401, "invalid_api_key");
    server
        .post_raw(path, body.as_bytes(), Some("wrong"))
        .assert_error(401, "invalid_api_key");
    assert_eq!(
        server
            .post_raw(path, body.as_bytes(), Some("s3cret"))
            .status,
        200
    );
    server
        .get("/v1/models")
        .assert_error(401, "invalid_api_key");
    assert_eq!(server.get_with_key("/v1/models", "s3cret").status, 200);
    assert_eq!(server.get("/health").status, 200, "health stays open");
}

#[test]
fn api_key_can_come_from_the_environment() {
    let server = TestServer::start_with_env(&[], &[("GLIMPSE_API_KEY", "from-env")]);
    server.get("/metrics").assert_error(401, "invalid_api_key");
    assert_eq!(server.get_with_key("/metrics", "from-env").status, 200);
}

#[test]
fn oversized_bodies_are_413_and_the_server_lives_on() {
    let server = TestServer::start(&["--max-body-mb", "1"]);
    let big = image_request(vec![json!({"type": "image", "image": "A".repeat(2 << 20)})]);
    let message = server.chat(&big).assert_error(413, "body_too_large");
    assert!(message.contains("1048576 bytes"), "{message}");

    let address = server.base.trim_start_matches("http://").to_owned();
    let mut socket = TcpStream::connect(&address).expect("connecting");
    socket
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\n{")
        .expect("sending");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = [0u8; 12];
    socket.read_exact(&mut head).expect("reading the answer");
    assert_eq!(&head, b"HTTP/1.1 413");
    drop(socket);
    assert_eq!(server.get("/health").status, 200, "the server survived");
    assert_eq!(server.chat(&hello()).status, 200);
}

/// A burst of connections, all kept open (as a browser loading the page's modules or a pool of
/// API clients keeps them): each gets its answer while the others stay connected. tiny_http's
/// own connection pool lost the wake-up of a connection arriving while an idle thread was
/// being woken, leaving it unread until another connection closed (the page's load hung).
#[test]
fn a_burst_of_kept_open_connections_is_served_at_once() {
    let server = TestServer::start(&["--request-timeout", "600"]);
    let address = server.base.trim_start_matches("http://").to_owned();
    for burst in 0..5 {
        let mut sockets: Vec<TcpStream> = (0..16)
            .map(|_| TcpStream::connect(&address).expect("connecting"))
            .collect();
        for socket in &mut sockets {
            socket
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("sending");
        }
        for (index, socket) in sockets.iter_mut().enumerate() {
            socket
                .set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            let mut head = [0u8; 12];
            socket.read_exact(&mut head).unwrap_or_else(|e| {
                panic!("burst {burst}: connection {index} of 16 got no answer: {e}")
            });
            assert_eq!(&head, b"HTTP/1.1 200");
        }
    }
}

#[test]
fn bad_requests_are_refused_with_the_field_named() {
    let server = TestServer::start(&["--max-images", "1", "--max-image-pixels", "50000"]);
    let image = data_uri_part(&fixture_image());
    let cases = [
        (b"{not json".to_vec(), 400, "invalid_json", "not valid JSON"),
        (json!({"messages": []}).to_string().into_bytes(), 400, "invalid_field", "at least one message"),
        (json!({"model": "x"}).to_string().into_bytes(), 400, "missing_field", "'messages' is required"),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 9}).to_string().into_bytes(),
            400, "invalid_field", "'temperature' must be a number from 0 to 2, got 9",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "logprobs": true, "top_logprobs": 30}).to_string().into_bytes(),
            400, "invalid_field", "'top_logprobs' must be an integer from 0 to 20",
        ),
        (
            image_request(vec![json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}})]).to_string().into_bytes(),
            400, "invalid_image", "'messages[0].content[0].image_url.url'",
        ),
        (
            image_request(vec![json!({"type": "image", "image": "aGVsbG8="})]).to_string().into_bytes(),
            400, "invalid_image", "unrecognized image format",
        ),
        (
            image_request(vec![image.clone(), image.clone()]).to_string().into_bytes(),
            400, "too_many_images", "2 images, more than the limit of 1",
        ),
        (
            image_request(vec![image]).to_string().into_bytes(),
            400, "invalid_image", "81920 pixels, over the limit of 50000",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "n": 3}).to_string().into_bytes(),
            422, "unsupported", "'n' = 3",
        ),
    ];
    for (body, status, code, needle) in cases {
        let answer = server.post_raw("/v1/chat/completions", &body, None);
        let message = answer.assert_error(status, code);
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    assert_eq!(server.chat(&hello()).status, 200, "still serving");
}

#[test]
fn prompt_longer_than_the_context_is_400_with_both_numbers() {
    let server = TestServer::start(&["--ctx", "64"]);
    let case = case("one_image_noresize");
    let message = server
        .chat(&greedy_request(&case, &data_uri_part))
        .assert_error(400, "prompt_too_long");
    let prompt = case.input_ids.len().to_string();
    assert!(
        message.contains(&prompt) && message.contains("64"),
        "{message}"
    );

    let mut request = server.long_greedy_request(64);
    if let Some(fields) = request.as_object_mut() {
        fields.remove("max_tokens");
    }
    let body = server.complete(&request);
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"], 64,
        "max_tokens is capped to fill the context: {usage}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "length");
}

#[test]
fn full_queue_is_429_and_a_vanished_client_frees_its_slot() {
    let server = TestServer::start(&["--parallel", "1", "--max-queue", "0", "--ctx", "32768"]);
    let mut long = server.long_greedy_request(500);
    long["max_tokens"] = json!(30000);
    let mut stream = server.open_stream(&long);
    for _ in 0..2 {
        stream.next_event().expect("the long answer streams");
    }
    let refused = server.chat(&hello());
    refused.assert_error(429, "queue_full");
    assert_eq!(refused.retry_after.as_deref(), Some("1"));

    drop(stream);
    let dropped = Instant::now();
    loop {
        let answer = server.chat(&hello());
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 429, "{}", answer.body);
        assert!(
            dropped.elapsed() < Duration::from_secs(10),
            "the slot stayed busy after its client left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.metric("glimpse_active_generations"), 0.0);
    let refusals =
        server.metric("glimpse_requests_total{route=\"/v1/chat/completions\",status=\"429\"}");
    assert!(refusals >= 1.0);
}

#[test]
fn image_urls_can_be_switched_off_and_downloads_are_capped() {
    let host = host_files(vec![("/big.png", vec![0u8; 2 << 20])]);
    let url_part = json!({"type": "image_url", "image_url": {"url": format!("{host}/big.png")}});
    let server = TestServer::start(&["--max-image-download-mb", "1", "--image-url-allow-private"]);
    // The client hears the same neutral words for both; the operator's log says why.
    let too_large = server
        .chat(&image_request(vec![url_part.clone()]))
        .assert_error(400, "image_fetch_failed");
    assert!(too_large.contains("could not be used"), "{too_large}");
    assert!(server.wait_for_log("larger than 1048576 bytes").is_some());
    let missing = json!({"type": "image", "image": format!("{host}/missing.png")});
    let message = server
        .chat(&image_request(vec![missing]))
        .assert_error(400, "image_fetch_failed");
    assert_eq!(
        message.replace("content[0].image'", "content[0].image_url.url'"),
        too_large
    );
    assert!(server.wait_for_log("404").is_some());
    let local_file = json!({"type": "image", "image": "file:///etc/passwd"});
    server
        .chat(&image_request(vec![local_file]))
        .assert_error(400, "invalid_image");

    let closed = TestServer::start(&["--no-image-urls"]);
    let message = closed
        .chat(&image_request(vec![url_part]))
        .assert_error(400, "image_urls_disabled");
    assert!(message.contains("--no-image-urls"), "{message}");
}

#[test]
fn health_models_metrics_and_unknown_routes() {
    let server = TestServer::start(&[
        "--ctx",
        "4096",
        "--image-max-tokens",
        "1024",
        "--max-image-pixels",
        "1000000",
    ]);
    let health = server.get("/health");
    assert_eq!(
        (health.status, health.json()["status"].clone()),
        (200, json!("ok"))
    );
    let models = server.get("/v1/models").json();
    assert_eq!(models["object"], "list");
    let id = models["data"][0]["id"].as_str().expect("model id");
    assert!(id.starts_with("tiny-untied-f32"), "{id}");
    // What the web chat sizes its images and prompts by, in both places.
    for (place, info) in [
        ("/v1/models", &models["data"][0]),
        ("/health", &health.json()),
    ] {
        assert_eq!(info["context_length"], 4096, "{place}");
        assert_eq!(info["profile"], "f32", "{place}");
        assert_eq!(info["image_max_tokens"], 1024, "{place}");
        assert_eq!(info["image_budget_pixels"], 1024 * 32 * 32, "{place}");
        assert_eq!(info["image_min_tokens"], 64, "{place}");
        assert_eq!(info["max_image_pixels"], 1_000_000, "{place}");
        assert_eq!(info["max_images"], 8, "{place}");
    }
    server.get("/v1/nothing").assert_error(404, "not_found");
    server
        .get("/v1/chat/completions")
        .assert_error(405, "method_not_allowed");

    let body = server.complete(&hello());
    assert_eq!(body["model"], id);
    let metrics = server.get("/metrics");
    assert!(metrics.content_type.starts_with("text/plain"));
    for sample in [
        "glimpse_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 1",
        "glimpse_completion_tokens_total 2",
        "glimpse_time_to_first_token_seconds_count 1",
        "glimpse_vision_seconds_count 1",
        "glimpse_prefill_seconds_count 1",
        "glimpse_decode_seconds_count 1",
        "glimpse_queue_depth 0",
        "glimpse_model_loaded 1",
        "glimpse_vision_cache_bytes 0",
    ] {
        assert!(
            metrics.body.contains(sample),
            "{sample} missing in\n{}",
            metrics.body
        );
    }
}

#[test]
fn web_page_is_served_unless_lite_or_switched_off() {
    let server = TestServer::start(&[]);
    let page = server.get("/");
    if common::binary_has_webui() {
        assert_eq!(page.status, 200);
        assert!(
            page.content_type.starts_with("text/html"),
            "{}",
            page.content_type
        );
        assert!(page.body.contains("<html"));
        assert_eq!(server.get("/app.js").status, 200);
        assert_eq!(server.get("/style.css").status, 200);
        // app.js is an ES module importing the others: browsers need a JavaScript type.
        let module = server.get("/markdown.js");
        assert_eq!(module.status, 200);
        assert!(
            module.content_type.starts_with("text/javascript"),
            "{}",
            module.content_type
        );
    } else {
        page.assert_error(404, "not_found");
    }
    let without = TestServer::start(&["--no-webui"]);
    without.get("/").assert_error(404, "not_found");
}
