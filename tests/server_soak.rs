//! Soak: 200 requests from 8 concurrent clients against one server, mixing streamed and
//! whole answers, fixture images (answers checked against transformers), fresh random
//! images (filling and evicting the vision cache), clients that hang up mid-stream, and
//! bad requests. No unexpected failure, every answer complete, and the server's resident
//! memory after the run within `RSS_GROWTH_BOUND` of what it was after a warm-up round of
//! the same mix (no leak in KV caches, the vision cache or per-request buffers).
#![cfg(target_os = "linux")]
use crate::server_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};
use server_support::*;

const CLIENTS: usize = 8;
const REQUESTS: usize = 200;
const WARM_UP: usize = 80;
/// How much the resident memory may grow from after the warm-up to after the soak. Measured
/// here: +22 MiB after a 40-request warm-up, then +4 and +0.2 MiB over further rounds of 200
/// (allocator arenas of the 8 client threads settling, not a leak growing per request).
const RSS_GROWTH_BOUND: u64 = 48 << 20;

/// A fixture request and the answer transformers gives.
struct Checked {
    request: Value,
    text: String,
}

struct Mix {
    checked: Vec<Checked>,
}

impl Mix {
    fn new() -> Self {
        let checked = [
            "text_only",
            "one_image_noresize",
            "one_image_resize",
            "two_images_text_between",
            "system_prompt",
            "rgba",
        ]
        .iter()
        .map(|name| {
            let case = case(name);
            Checked {
                request: greedy_request(&case, &data_uri_part),
                text: expected_text(&case),
            }
        })
        .collect();
        Self { checked }
    }

    /// Runs request number `i` of the mix; an error message when it went wrong.
    fn run(&self, server: &TestServer, i: usize) -> Result<(), String> {
        let checked = &self.checked[i % self.checked.len()];
        match i % 6 {
            0 | 1 => {
                let answer = server.chat(&checked.request);
                expect(answer.status == 200, || answer.body.clone())?;
                let text = &answer.json()["choices"][0]["message"]["content"];
                expect(text == &json!(checked.text), || format!("answer {text}"))
            }
            2 => {
                let events = server.stream(&checked.request);
                let text = streamed_text(&events);
                expect(text == checked.text, || format!("streamed answer {text:?}"))
            }
            3 => {
                // A client that hangs up after the first tokens.
                let mut request = checked.request.clone();
                request["max_tokens"] = json!(200);
                let mut stream = server.open_stream(&request);
                for _ in 0..2 {
                    stream
                        .next_event()
                        .ok_or("the stream ended before its first events")?;
                }
                Ok(())
            }
            4 => {
                // A never-seen image: encoded, cached, later evicted.
                let png = random_png(i as u32);
                let request = json!({
                    "messages": [{"role": "user", "content": [
                        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}},
                        {"type": "text", "text": "What is in the picture?"}]}],
                    "max_tokens": 6, "temperature": 0
                });
                let answer = server.chat(&request);
                expect(answer.status == 200, || answer.body.clone())?;
                let tokens = &answer.json()["usage"]["completion_tokens"];
                expect(tokens.as_u64().is_some_and(|n| n >= 1), || {
                    format!("usage {tokens}")
                })
            }
            _ => {
                let bad = [
                    json!({"messages": []}),
                    json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 7}),
                    json!({"messages": [{"role": "user", "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}),
                ];
                let answer = server.chat(&bad[i % bad.len()]);
                expect(answer.status == 400, || answer.body.clone())?;
                expect(answer.json()["error"]["code"].is_string(), || {
                    answer.body.clone()
                })
            }
        }
    }
}

fn expect(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// A small PNG of random-looking pixels, different for every `seed`, as base64.
fn random_png(seed: u32) -> String {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let image = image::RgbImage::from_fn(96, 64, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encoding a PNG");
    base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        bytes.into_inner(),
    )
}

/// Runs requests `range` from `CLIENTS` threads; the failures.
fn round(server: &TestServer, mix: &Mix, range: std::ops::Range<usize>) -> Vec<String> {
    let next = AtomicUsize::new(range.start);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= range.end {
                    break;
                }
                if let Err(e) = mix.run(server, i) {
                    failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("request {i} (kind {}): {e}", i % 6));
                }
            });
        }
    });
    failures.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn two_hundred_mixed_requests_from_eight_clients_all_complete_without_a_leak() {
    let server = TestServer::start(&["--parallel", "4", "--max-queue", "16"]);
    let mix = Mix::new();
    let failures = round(&server, &mix, 0..WARM_UP);
    assert!(failures.is_empty(), "warm-up failures: {failures:#?}");
    let warm = server.rss_bytes();
    let failures = round(&server, &mix, WARM_UP..WARM_UP + REQUESTS);
    assert!(
        failures.is_empty(),
        "{} failures: {failures:#?}",
        failures.len()
    );
    // Hung-up streams free their slots at their next token; let them.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = server.rss_bytes();
    eprintln!(
        "server RSS after warm-up {:.1} MiB, after {REQUESTS} requests {:.1} MiB",
        warm as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    assert!(
        after <= warm + RSS_GROWTH_BOUND,
        "RSS grew from {warm} to {after} bytes"
    );
    assert_eq!(server.metric("glimpse_active_generations"), 0.0);
    assert_eq!(server.get("/health").status, 200);
}
