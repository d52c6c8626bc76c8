//! Support for the `glimpse serve` tests: starts the real binary on the converted
//! tiny-untied fixture with `--port 0`, reads the URL it prints, and talks to it over
//! HTTP with ureq (JSON requests, SSE streams, metrics). Fixture conversations are turned
//! into OpenAI requests with the images inline as data URIs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::common::{converted, glimpse_bin, tokenizer_json, Case};

/// A running `glimpse serve`, killed when dropped.
pub struct TestServer {
    child: Child,
    pub base: String,
    agent: ureq::Agent,
    /// Every line the server wrote to stderr so far.
    log: Arc<Mutex<Vec<String>>>,
}

/// An HTTP answer: status, headers we look at, body.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub content_type: String,
    pub body: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// The value of header `name` (any case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts an OpenAI error object with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        let body = self.json();
        let error = &body["error"];
        assert_eq!(error["code"], code, "{body}");
        assert!(error["type"].is_string(), "{body}");
        error["message"].as_str().unwrap_or_default().to_owned()
    }
}

impl TestServer {
    /// Starts the server on the tiny-untied fixture with `extra` flags.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with_env(extra, &[])
    }

    /// `start` with environment variables set (GLIMPSE_API_KEY is otherwise removed).
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_model(&converted("tiny-untied", "f32"), extra, env)
    }

    /// Starts the server on the model file `model`.
    pub fn start_model(model: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(glimpse_bin())
            .arg("serve")
            .arg("-m")
            .arg(model)
            .args(["--port", "0", "--threads", "1"])
            .args(extra)
            .env_remove("GLIMPSE_API_KEY")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting glimpse serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, receiver) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("glimpse listening on ") {
                    let _ = sender.send(url.to_owned());
                }
                eprintln!("[server] {line}");
                lines.lock().expect("log lock").push(line);
            }
        });
        let base = match receiver.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("glimpse serve did not print its URL");
            }
        };
        let agent = client_agent(ureq::tls::TlsConfig::default());
        Self {
            child,
            base,
            agent,
            log,
        }
    }

    /// The first log line containing `needle`, waiting up to 10 s for it (the request log
    /// is written after the answer).
    pub fn wait_for_log(&self, needle: &str) -> Option<String> {
        let started = Instant::now();
        loop {
            let found = self
                .log
                .lock()
                .expect("log lock")
                .iter()
                .find(|line| line.contains(needle))
                .cloned();
            if found.is_some() || started.elapsed() > Duration::from_secs(10) {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Trusts the PEM certificate `ca` for https (a server started with --tls-cert).
    pub fn trust(&mut self, ca: &[u8]) {
        let root = ureq::tls::Certificate::from_pem(ca).expect("a PEM certificate");
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![root])))
            .build();
        self.agent = client_agent(tls);
    }

    /// Sends `signal` to the server process.
    #[cfg(unix)]
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "sending signal {signal}"
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        let mut response = response.expect("HTTP request failed");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after");
        let content_type = header("content-type").unwrap_or_default();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = value.to_str().unwrap_or_default().to_owned();
                (name.as_str().to_ascii_lowercase(), value)
            })
            .collect();
        Answer {
            status: response.status().as_u16(),
            retry_after,
            content_type,
            headers,
            body: response
                .body_mut()
                .with_config()
                .limit(100 << 20)
                .read_to_string()
                .expect("reading the body"),
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        Self::answer(self.agent.get(self.url(path)).call())
    }

    pub fn get_with_key(&self, path: &str, key: &str) -> Answer {
        self.get_with_header(path, "Authorization", &format!("Bearer {key}"))
    }

    pub fn get_with_header(&self, path: &str, name: &str, value: &str) -> Answer {
        self.send("GET", path, &[(name, value)])
    }

    /// A request without a body, with `headers`.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(()).expect("a request");
        Self::answer(self.agent.run(request))
    }

    pub fn post_raw(&self, path: &str, body: &[u8], key: Option<&str>) -> Answer {
        let mut request = self
            .agent
            .post(self.url(path))
            .header("Content-Type", "application/json");
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        Self::answer(request.send(body))
    }

    /// `POST /v1/chat/completions` with a JSON body.
    pub fn chat(&self, body: &Value) -> Answer {
        self.post_raw("/v1/chat/completions", body.to_string().as_bytes(), None)
    }

    /// A successful non-streamed completion.
    pub fn complete(&self, body: &Value) -> Value {
        let answer = self.chat(body);
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()
    }

    /// Opens a streamed completion; the events are read as they come.
    pub fn open_stream(&self, body: &Value) -> EventStream {
        self.open_stream_at("/v1/chat/completions", body)
    }

    /// A streamed request to `path` (an OpenAI-style SSE endpoint).
    pub fn open_stream_at(&self, path: &str, body: &Value) -> EventStream {
        let mut body = body.clone();
        body["stream"] = json!(true);
        let response = self
            .agent
            .post(self.url(path))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .expect("HTTP request failed");
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(content_type, "text/event-stream");
        EventStream {
            lines: Box::new(BufReader::new(response.into_body().into_reader())),
            saw_done: false,
        }
    }

    /// A whole streamed completion: the JSON of every `data:` event before `[DONE]`.
    pub fn stream(&self, body: &Value) -> Vec<Value> {
        self.stream_at("/v1/chat/completions", body)
    }

    /// Every event of a stream from `path`, which must end with `[DONE]`.
    pub fn stream_at(&self, path: &str, body: &Value) -> Vec<Value> {
        let mut stream = self.open_stream_at(path, body);
        let mut events = Vec::new();
        while let Some(event) = stream.next_event() {
            events.push(event);
        }
        assert!(stream.saw_done, "the stream did not end with [DONE]");
        events
    }

    /// A greedy request whose answer runs at least `tokens` tokens (no early end of
    /// turn), found by trying a few prompts on this model.
    pub fn long_greedy_request(&self, tokens: usize) -> Value {
        [
            "Tell me a story.",
            "Hello",
            "Describe the sea.",
            "Count to a thousand.",
        ]
        .iter()
        .map(|prompt| {
            json!({
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0, "max_tokens": tokens
            })
        })
        .find(|request| self.complete(request)["choices"][0]["finish_reason"] == "length")
        .unwrap_or_else(|| panic!("every prompt ended before {tokens} tokens"))
    }

    /// One value of the Prometheus text at `/metrics` (a sample line's number).
    pub fn metric(&self, sample: &str) -> f64 {
        let text = self.get("/metrics").body;
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no sample {sample} in\n{text}"))
            .parse()
            .expect("a number")
    }
}

impl TestServer {
    /// The server's resident memory in bytes (Linux: /proc/PID/status VmRSS).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("reading the server's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .expect("VmRSS in /proc status")
            * 1024
    }

    /// Sends SIGTERM and waits (up to `limit`) for the process to exit; its exit status.
    #[cfg(unix)]
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the server") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "the server did not exit within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test client: statuses are answers (not errors), generous time limit.
fn client_agent(tls: ureq::tls::TlsConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .tls_config(tls)
        .build()
        .into()
}

/// The events of a stream, read one at a time.
pub struct EventStream {
    lines: Box<dyn BufRead + Send>,
    pub saw_done: bool,
}

impl EventStream {
    /// The next `data:` event as JSON; `None` after `[DONE]` or at the end.
    pub fn next_event(&mut self) -> Option<Value> {
        loop {
            let mut line = String::new();
            if self.lines.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let Some(data) = line.trim_end().strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                self.saw_done = true;
                return None;
            }
            return Some(serde_json::from_str(data).expect("event is JSON"));
        }
    }
}

/// The concatenated `delta.content` of stream events.
pub fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect()
}

pub fn data_uri(path: &Path) -> String {
    let mime = match path.extension().and_then(|e| e.to_str()) {
        Some("png") => "image/png",
        _ => "image/jpeg",
    };
    format!("data:{mime};base64,{}", base64_of(path))
}

pub fn base64_of(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("reading a fixture image");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A fixture conversation as OpenAI messages; `image` turns a fixture image path into
/// the part to send.
pub fn openai_messages(case: &Case, image: &dyn Fn(&Path) -> Value) -> Value {
    let messages: Vec<Value> = case
        .messages
        .as_array()
        .expect("messages")
        .iter()
        .map(|message| {
            let content: Vec<Value> = message["content"]
                .as_array()
                .expect("parts")
                .iter()
                .map(|part| match part["type"].as_str() {
                    Some("image") => image(
                        &crate::common::fixtures()
                            .join(part["image"].as_str().expect("image path")),
                    ),
                    _ => part.clone(),
                })
                .collect();
            json!({"role": message["role"], "content": content})
        })
        .collect();
    Value::Array(messages)
}

/// The `image_url` part with a data URI, the form most clients send.
pub fn data_uri_part(path: &Path) -> Value {
    json!({"type": "image_url", "image_url": {"url": data_uri(path)}})
}

/// A greedy request for a fixture case, as long as the fixture's answer.
pub fn greedy_request(case: &Case, image: &dyn Fn(&Path) -> Value) -> Value {
    json!({
        "model": "tiny",
        "messages": openai_messages(case, image),
        "temperature": 0,
        "max_tokens": case.greedy_tokens.len(),
    })
}

/// The fixture's greedy answer as text (special tokens skipped, as the API returns it).
pub fn expected_text(case: &Case) -> String {
    let bytes = std::fs::read(tokenizer_json()).expect("tokenizer.json");
    let tokenizer = glimpse::chat::Tokenizer::from_json_bytes(&bytes).expect("tokenizer");
    tokenizer
        .decode(&case.greedy_tokens, true)
        .expect("decoding the greedy tokens")
}

/// End-of-turn ids that end a fixture's greedy answer (`<|im_end|>`, `<|endoftext|>`).
const END_OF_TURN: [u32; 2] = [151645, 151643];

/// Tokens of the fixture's answer, without the end-of-turn token that may close it.
pub fn answer_tokens(case: &Case) -> usize {
    match case.greedy_tokens.last() {
        Some(last) if END_OF_TURN.contains(last) => case.greedy_tokens.len() - 1,
        _ => case.greedy_tokens.len(),
    }
}

/// `stop` when the fixture's answer ended with an end-of-turn token, else `length`.
pub fn finish_reason(case: &Case) -> &'static str {
    if answer_tokens(case) < case.greedy_tokens.len() {
        "stop"
    } else {
        "length"
    }
}

pub fn case(name: &str) -> Case {
    crate::common::cases("tiny-untied")
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no fixture case {name}"))
}

/// Runs the Python client script `tests/{script}` (an official client library, from the test
/// venv) against `server`, which takes `key`: its case (the fixture's greedy image question
/// and answer, plus `extra`) goes in GLIMPSE_CLIENT_TEST; it must
/// exit 0 and print "client: ok".
pub fn run_client_script(script: &str, server: &TestServer, key: &str, extra: Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = crate::common::test_venv_python();
    let model = server.get_with_key("/v1/models", key).json()["data"][0]["id"].clone();
    let case = case("one_image_noresize");
    let question = case.messages[0]["content"][1]["text"].clone();
    let mut test = json!({
        "base_url": server.base,
        "api_key": key,
        "model": model,
        "image": crate::common::fixtures().join("images/noresize_256x320.png"),
        "question": question,
        "max_tokens": case.greedy_tokens.len(),
        "expected_text": expected_text(&case),
        "finish_reason": finish_reason(&case),
        "prompt_tokens": case.input_ids.len(),
        "completion_tokens": answer_tokens(&case),
    });
    for (name, value) in extra.as_object().expect("an object") {
        test[name] = value.clone();
    }
    let output = Command::new(&python)
        .arg(root.join("tests").join(script))
        .env("GLIMPSE_CLIENT_TEST", test.to_string())
        .output()
        .unwrap_or_else(|e| panic!("running tests/{script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("client: ok"), "{stdout}");
}

/// A loopback HTTP server that answers every request with a 302 to `location`.
pub fn host_redirect(location: String) -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("binding the redirect host");
    let address = server.server_addr().to_ip().expect("an IP address");
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let header = tiny_http::Header::from_bytes("Location", location.as_bytes())
                .expect("a Location header");
            let _ = request.respond(tiny_http::Response::empty(302).with_header(header));
        }
    });
    format!("http://{address}")
}

/// A tiny HTTP server for image URLs: serves `files` (path → bytes) until the process ends.
pub fn host_files(files: Vec<(&'static str, Vec<u8>)>) -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("binding the image host");
    let address = server
        .server_addr()
        .to_ip()
        .expect("the image host has an IP address");
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let file = files.iter().find(|(path, _)| *path == request.url());
            let _ = match file {
                Some((_, bytes)) => request.respond(tiny_http::Response::from_data(bytes.clone())),
                None => request.respond(tiny_http::Response::empty(404)),
            };
        }
    });
    format!("http://{address}")
}
