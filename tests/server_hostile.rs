//! The hostile-input corpus, driven against the real `glimpse serve`: malformed and
//! mistyped JSON, bad messages and content parts, broken, lying and oversized images,
//! unreachable / huge / slow image URLs, out-of-range sampling fields, oversized bodies,
//! a client that trickles its body, one that vanishes mid-stream, wrong API keys. Every
//! case must get its clear JSON error with the right status, and after every case a
//! valid request must still get transformers' greedy answer: one bad client never
//! costs anyone else their answer.
use crate::common;
use crate::server_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use server_support::*;

const KEY: &str = "corpus-key";

/// One server for the whole corpus, and the valid request that must keep working.
struct Corpus {
    server: TestServer,
    valid: Value,
    expected: String,
}

impl Corpus {
    fn start(extra: &[&str]) -> Self {
        let mut flags = vec![
            "--api-key",
            KEY,
            "--max-images",
            "2",
            "--max-body-mb",
            "4",
            "--ctx",
            "1024",
            "--request-timeout",
            "3",
            "--image-download-timeout",
            "2",
            "--max-image-download-mb",
            "1",
        ];
        // Four slots unless the test sets its own: hostile input meets continuous batching.
        if !extra.contains(&"--parallel") {
            flags.extend_from_slice(&["--parallel", "4"]);
        }
        flags.extend_from_slice(extra);
        let case = case("one_image_noresize");
        Self {
            server: TestServer::start(&flags),
            valid: greedy_request(&case, &data_uri_part),
            expected: expected_text(&case),
        }
    }

    fn send(&self, body: &[u8]) -> Answer {
        self.server
            .post_raw("/v1/chat/completions", body, Some(KEY))
    }

    /// The valid request still gets the fixture's answer.
    fn still_serves(&self, after: &str) {
        let answer = self.server.post_raw(
            "/v1/chat/completions",
            self.valid.to_string().as_bytes(),
            Some(KEY),
        );
        assert_eq!(answer.status, 200, "after {after}: {}", answer.body);
        let text = &answer.json()["choices"][0]["message"]["content"];
        assert_eq!(text, &json!(self.expected), "after {after}");
    }

    /// `body` is refused with `status` / `code` and a message containing `needle`; then
    /// the server still answers correctly.
    fn refuses(&self, label: &str, body: &[u8], status: u16, code: &str, needle: &str) {
        let answer = self.send(body);
        assert_eq!(answer.status, status, "{label}: {}", answer.body);
        let message = answer.assert_error(status, code);
        assert!(
            message.contains(needle),
            "{label}: {needle:?} not in {message:?}"
        );
        self.still_serves(label);
    }

    fn address(&self) -> String {
        self.server.base.trim_start_matches("http://").to_owned()
    }
}

fn text_request(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}], "max_tokens": 2})
}

/// A request with `fields` merged into a small valid text request.
fn with_fields(fields: Value) -> Vec<u8> {
    let mut request = text_request("Hello");
    for (key, value) in fields.as_object().expect("an object") {
        request[key] = value.clone();
    }
    request.to_string().into_bytes()
}

fn image_request(part: Value) -> Vec<u8> {
    json!({"messages": [{"role": "user", "content": [part, {"type": "text", "text": "What is it?"}]}],
           "max_tokens": 2})
    .to_string()
    .into_bytes()
}

fn data_uri(mime: &str, bytes: &[u8]) -> Value {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    json!({"type": "image_url", "image_url": {"url": format!("data:{mime};base64,{encoded}")}})
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(common::fixtures().join("images").join(name)).expect("a fixture image")
}

/// A PNG declaring `width` × `height` whose data chunk is a few bytes of a zlib stream: what
/// a decompression bomb shows (the server must refuse on the header, before inflating).
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", header),
        (
            b"IDAT",
            vec![0x78, 0x9c, 0xed, 0xc1, 0x01, 0x0d, 0x00, 0x00],
        ),
        (b"IEND", Vec::new()),
    ] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(&data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn encoded_png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([200, 30, 30]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encoding a PNG");
    bytes.into_inner()
}

#[test]
fn malformed_requests_get_clear_errors_and_the_server_keeps_answering() {
    let corpus = Corpus::start(&[]);
    corpus.still_serves("start-up");
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        (
            "malformed JSON",
            b"{\"messages\": [".to_vec(),
            400,
            "invalid_json",
            "not valid JSON",
        ),
        (
            "not UTF-8",
            b"{\"messages\": \"\xff\xfe\"}".to_vec(),
            400,
            "invalid_json",
            "not valid JSON",
        ),
        (
            "empty body",
            Vec::new(),
            400,
            "invalid_json",
            "not valid JSON",
        ),
        (
            "JSON array",
            b"[1, 2]".to_vec(),
            400,
            "invalid_body",
            "must be a JSON object",
        ),
        (
            "deeply nested",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            400,
            "invalid_json",
            "not valid JSON",
        ),
        (
            "missing messages",
            json!({"model": "x"}).to_string().into_bytes(),
            400,
            "missing_field",
            "'messages'",
        ),
        (
            "empty messages",
            json!({"messages": []}).to_string().into_bytes(),
            400,
            "invalid_field",
            "at least one message",
        ),
        (
            "messages is a string",
            json!({"messages": "hi"}).to_string().into_bytes(),
            400,
            "invalid_field",
            "'messages'",
        ),
        (
            "message is a number",
            json!({"messages": [5]}).to_string().into_bytes(),
            400,
            "invalid_field",
            "messages[0]",
        ),
        (
            "unknown role",
            json!({"messages": [{"role": "wizard", "content": "hi"}]})
                .to_string()
                .into_bytes(),
            400,
            "invalid_field",
            "wizard",
        ),
        (
            "missing role",
            json!({"messages": [{"content": "hi"}]})
                .to_string()
                .into_bytes(),
            400,
            "missing_field",
            "role",
        ),
        (
            "content is a number",
            json!({"messages": [{"role": "user", "content": 7}]})
                .to_string()
                .into_bytes(),
            400,
            "invalid_field",
            "content",
        ),
        (
            "unknown part type",
            json!({"messages": [{"role": "user", "content": [{"type": "audio", "audio": "x"}]}]})
                .to_string()
                .into_bytes(),
            422,
            "unsupported",
            "audio",
        ),
        (
            "part without type",
            json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]})
                .to_string()
                .into_bytes(),
            400,
            "missing_field",
            "type",
        ),
        (
            "max_tokens negative",
            with_fields(json!({"max_tokens": -5})),
            400,
            "invalid_field",
            "'max_tokens'",
        ),
        (
            "max_tokens zero",
            with_fields(json!({"max_tokens": 0})),
            400,
            "invalid_field",
            "'max_tokens'",
        ),
        (
            "max_tokens huge",
            with_fields(json!({"max_tokens": 1e15})),
            400,
            "invalid_field",
            "'max_tokens'",
        ),
        (
            "max_tokens a string",
            with_fields(json!({"max_tokens": "ten"})),
            400,
            "invalid_field",
            "'max_tokens'",
        ),
        (
            "temperature too high",
            with_fields(json!({"temperature": 2.5})),
            400,
            "invalid_field",
            "'temperature'",
        ),
        (
            "temperature negative",
            with_fields(json!({"temperature": -1})),
            400,
            "invalid_field",
            "'temperature'",
        ),
        (
            "temperature a string",
            with_fields(json!({"temperature": "hot"})),
            400,
            "invalid_field",
            "'temperature'",
        ),
        (
            "top_p out of range",
            with_fields(json!({"top_p": 1.5})),
            400,
            "invalid_field",
            "'top_p'",
        ),
        (
            "top_logprobs over 20",
            with_fields(json!({"logprobs": true, "top_logprobs": 21})),
            400,
            "invalid_field",
            "'top_logprobs'",
        ),
        (
            "stream not a boolean",
            with_fields(json!({"stream": "yes"})),
            400,
            "invalid_field",
            "'stream'",
        ),
        (
            "stop not text",
            with_fields(json!({"stop": [1, 2]})),
            400,
            "invalid_field",
            "'stop'",
        ),
        (
            "n = 2",
            with_fields(json!({"n": 2})),
            422,
            "unsupported",
            "'n'",
        ),
        (
            "invalid base64",
            image_request(
                json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@@"}}),
            ),
            400,
            "invalid_image",
            "invalid base64",
        ),
        (
            "data URI of another type",
            image_request(data_uri(
                "text/plain",
                &fixture_bytes("noresize_256x320.png"),
            )),
            400,
            "invalid_image",
            "not an image type",
        ),
        (
            "not an image",
            image_request(data_uri("image/png", b"hello, world")),
            400,
            "invalid_image",
            "unrecognized image format",
        ),
        (
            "truncated PNG",
            image_request(data_uri(
                "image/png",
                &fixture_bytes("noresize_256x320.png")[..2000],
            )),
            400,
            "invalid_image",
            "image",
        ),
        (
            "truncated JPEG",
            image_request(data_uri(
                "image/jpeg",
                &fixture_bytes("resize_300x200.jpg")[..1500],
            )),
            400,
            "invalid_image",
            "image",
        ),
        (
            "decompression bomb",
            image_request(data_uri("image/png", &png_header(30_000, 30_000))),
            400,
            "invalid_image",
            "900000000 pixels, over the limit",
        ),
        (
            "0x0 image",
            image_request(data_uri("image/png", &png_header(0, 0))),
            400,
            "invalid_image",
            "image",
        ),
        (
            "file URL",
            image_request(json!({"type": "image", "image": "file:///etc/passwd"})),
            400,
            "invalid_image",
            "'file://' is not accepted",
        ),
        (
            "too many images",
            json!({"messages": [{"role": "user", "content": [
            data_uri("image/png", &encoded_png(8, 8)), data_uri("image/png", &encoded_png(8, 8)),
            data_uri("image/png", &encoded_png(8, 8)), {"type": "text", "text": "Compare."}]}]})
            .to_string()
            .into_bytes(),
            400,
            "too_many_images",
            "3 images, more than the limit of 2",
        ),
        (
            "prompt longer than the context",
            text_request(&"lorem ipsum ".repeat(1500))
                .to_string()
                .into_bytes(),
            400,
            "prompt_too_long",
            "the context holds 1024 tokens",
        ),
        (
            "body over the limit",
            text_request(&"x".repeat(5 << 20)).to_string().into_bytes(),
            413,
            "body_too_large",
            "4194304 bytes",
        ),
    ];
    for (label, body, status, code, needle) in cases {
        corpus.refuses(label, &body, status, code, needle);
    }
}

#[test]
fn edge_values_that_are_valid_get_answers() {
    let corpus = Corpus::start(&[]);
    // A 1×1 image is valid for the processor (resized up to one 32×32 patch group).
    let tiny = corpus.send(&image_request(data_uri("image/png", &encoded_png(1, 1))));
    assert_eq!(tiny.status, 200, "{}", tiny.body);
    // max_tokens far beyond the context is capped to what is left.
    let capped = corpus.send(&with_fields(
        json!({"max_tokens": u32::MAX, "temperature": 0}),
    ));
    assert_eq!(capped.status, 200, "{}", capped.body);
    // Unknown fields are ignored, as OpenAI-compatible servers do.
    let unknown = corpus.send(&with_fields(json!({"frobnicate": {"deep": [1, 2, 3]}})));
    assert_eq!(unknown.status, 200, "{}", unknown.body);
    // A mislabelled image (PNG bytes sent as image/jpeg) is recognized by its content.
    let mislabelled = corpus.send(&image_request(data_uri(
        "image/jpeg",
        &fixture_bytes("noresize_256x320.png"),
    )));
    assert_eq!(mislabelled.status, 200, "{}", mislabelled.body);
    corpus.still_serves("edge values");
}

#[test]
fn wrong_keys_are_401_and_the_right_key_still_works() {
    let corpus = Corpus::start(&[]);
    let body = corpus.valid.to_string();
    for key in [None, Some("wrong"), Some(""), Some("corpus-key-but-longer")] {
        corpus
            .server
            .post_raw("/v1/chat/completions", body.as_bytes(), key)
            .assert_error(401, "invalid_api_key");
    }
    corpus.still_serves("wrong keys");
}

/// A listener that accepts connections and never answers (a hung image host).
fn silent_host() -> (String, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding");
    let url = format!(
        "http://{}/slow.png",
        listener.local_addr().expect("address")
    );
    (url, listener)
}

#[test]
fn unreachable_huge_and_slow_image_urls_are_400() {
    // The hosts are on loopback, which only a trusting server fetches from.
    let corpus = Corpus::start(&["--image-url-allow-private"]);
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding");
        listener.local_addr().expect("address").port()
    };
    let host = host_files(vec![("/big.png", vec![7u8; 3 << 20])]);
    let (slow_url, _silent) = silent_host();
    let url_part = |url: String| json!({"type": "image_url", "image_url": {"url": url}});
    let started = Instant::now();
    // Clients get one neutral message; the log says what happened.
    let cases = [
        (
            "unreachable URL",
            format!("http://127.0.0.1:{closed_port}/a.png"),
            "a.png: ",
        ),
        (
            "too large a download",
            format!("{host}/big.png"),
            "larger than 1048576 bytes",
        ),
        ("a host that never answers", slow_url, "slow.png: "),
    ];
    for (label, url, detail) in cases {
        let request = image_request(url_part(url));
        corpus.refuses(
            label,
            &request,
            400,
            "image_fetch_failed",
            "could not be used",
        );
        assert!(
            corpus.server.wait_for_log(detail).is_some(),
            "{label}: no {detail:?} in the log"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the download timeout (2 s) was not applied"
    );
}

/// Sends a request head by hand; returns the connection.
fn raw_request(address: &str, head: &str) -> TcpStream {
    let mut socket = TcpStream::connect(address).expect("connecting");
    socket.write_all(head.as_bytes()).expect("sending the head");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    socket
}

/// Reads a whole HTTP/1.1 response; (status, body) once the server closes or the body is in.
fn read_response(socket: &mut TcpStream) -> (u16, String) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            if length.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status, body.unwrap_or_default())
}

#[test]
fn a_client_trickling_its_body_gets_408_and_others_are_served_meanwhile() {
    let corpus = Corpus::start(&[]);
    let body = corpus.valid.to_string();
    let mut slow = raw_request(
        &corpus.address(),
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
    );
    let started = Instant::now();
    let mut reader = slow.try_clone().expect("cloning the socket");
    let answer = std::thread::spawn(move || read_response(&mut reader));
    std::thread::spawn(move || {
        // One byte a second, until the server has answered and closed.
        for byte in body.bytes() {
            if slow.write_all(&[byte]).is_err() || started.elapsed() > Duration::from_secs(20) {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    // Meanwhile everyone else is served.
    corpus.still_serves("a trickling client started");
    let (status, body) = answer.join().expect("the reading thread");
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("\"code\":\"request_timeout\""), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the 3 s request timeout was not applied ({:?})",
        started.elapsed()
    );
    corpus.still_serves("a trickling client");

    // Clients that stall in their head or in a small body (which tiny_http reads before
    // the request is handed over) lose their connection after the timeout.
    for stalled in [
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
             Content-Length: 100\r\n\r\n{{\"mess"
        ),
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le".to_owned(),
    ] {
        let started = Instant::now();
        let mut socket = raw_request(&corpus.address(), &stalled);
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a stalled connection stayed open {:?}",
            started.elapsed()
        );
        corpus.still_serves("a stalled client");
    }
}

#[test]
fn a_client_that_vanishes_mid_stream_or_mid_body_costs_nothing() {
    let corpus = Corpus::start(&["--parallel", "1"]);
    let mut long = corpus.valid.clone();
    long["max_tokens"] = json!(400);
    long["stream"] = json!(true);
    for _ in 0..3 {
        let mut socket = raw_request(
            &corpus.address(),
            &format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{long}",
                long.to_string().len()
            ),
        );
        let mut first = [0u8; 64];
        socket.read_exact(&mut first).expect("the stream starts");
        assert!(first.starts_with(b"HTTP/1.1 200"));
        drop(socket);
        corpus.still_serves("a client gone mid-stream");
    }
    // Half a body, then the connection closes.
    let mut half = raw_request(
        &corpus.address(),
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
             Content-Length: 5000\r\n\r\n{{\"messages\": [{{\"role\": \"user\""
        ),
    );
    half.shutdown(std::net::Shutdown::Write).expect("closing");
    let (status, _) = read_response(&mut half);
    assert_eq!(status, 400);
    corpus.still_serves("a client gone mid-body");
    let metrics = corpus.server.get_with_key("/metrics", KEY).body;
    assert!(
        metrics
            .lines()
            .any(|line| line == "glimpse_active_generations 0"),
        "{metrics}"
    );
}
