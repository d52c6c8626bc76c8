//! Models by name: `glimpse run` without `-m` takes the catalogue's default, downloads it
//! from a stand-in Hugging Face Hub (a local HTTP server answering the hub's URL layout for
//! the tiny-untied fixture checkpoint: `/api/models/REPO/revision/REV` and
//! `/REPO/resolve/REV/FILE` with ranged GETs), converts it once into the cache and answers
//! with transformers' greedy tokens; the second run needs no hub. Unreachable hubs and
//! profiles larger than the memory end with clear messages.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;

const REPO: &str = "glimpse-test/tiny-untied";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Serves `dir`'s files as the hub would serve repository `REPO` at any revision; returns
/// the endpoint URL and the count of file requests.
fn stand_in_hub(dir: PathBuf) -> (String, Arc<AtomicUsize>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("binding the stand-in hub");
    let endpoint = format!(
        "http://{}",
        server.server_addr().to_ip().expect("an address")
    );
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            counter.fetch_add(1, Ordering::SeqCst);
            let url = request.url().to_owned();
            let response = answer(&dir, &url, range(&request));
            let _ = request.respond(response);
        }
    });
    (endpoint, requests)
}

/// The `Range: bytes=START-[END]` of a request (inclusive end), if any.
fn range(request: &tiny_http::Request) -> (usize, Option<usize>) {
    let Some(spec) = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Range"))
        .and_then(|h| h.value.as_str().strip_prefix("bytes="))
    else {
        return (0, None);
    };
    let (start, end) = spec.split_once('-').unwrap_or((spec, ""));
    (start.parse().unwrap_or(0), end.parse().ok())
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a header")
}

fn answer(
    dir: &Path,
    url: &str,
    (start, end): (usize, Option<usize>),
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let files: Vec<String> = std::fs::read_dir(dir)
        .expect("the checkpoint")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if url.starts_with(&format!("/api/models/{REPO}/revision/")) {
        let siblings: Vec<_> = files
            .iter()
            .map(|f| serde_json::json!({"rfilename": f}))
            .chain([serde_json::json!({"rfilename": "README.md"})])
            .collect();
        let body = serde_json::json!({"sha": COMMIT, "siblings": siblings}).to_string();
        return tiny_http::Response::from_data(body.into_bytes());
    }
    let file = url
        .strip_prefix(&format!("/{REPO}/resolve/"))
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, file)| file.to_owned())
        .filter(|file| files.contains(file));
    let Some(file) = file else {
        return tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404);
    };
    let bytes = std::fs::read(dir.join(&file)).expect("a checkpoint file");
    let size = bytes.len();
    // A probe (`bytes=0-0`) gets one byte, a download everything from its start.
    let start = start.min(size);
    let end = end.map_or(size, |e| (e + 1).min(size)).max(start);
    tiny_http::Response::from_data(bytes[start..end].to_vec())
        .with_status_code(206)
        .with_header(header("ETag", &format!("\"{file}-{size}\"")))
        .with_header(header("X-Repo-Commit", COMMIT))
        .with_header(header(
            "Content-Range",
            &format!("bytes {start}-{}/{size}", end.saturating_sub(1)),
        ))
}

struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    fn new(name: &str, catalogue: &str) -> Self {
        let root = crate::common::scratch_dir(&format!("download-{name}"));
        std::fs::write(root.join("models.toml"), catalogue).expect("the catalogue");
        Self { root }
    }

    fn glimpse(&self, endpoint: &str, args: &[&str]) -> Output {
        Command::new(glimpse_bin())
            .args(args)
            .env("GLIMPSE_MODELS", self.root.join("models.toml"))
            .env("GLIMPSE_CACHE", self.root.join("cache"))
            .env("HF_HOME", self.root.join("hf"))
            .env("HF_ENDPOINT", endpoint)
            .env_remove("GLIMPSE_IGNORE_MEMORY")
            .output()
            .expect("running glimpse")
    }
}

fn catalogue(ram_gb: f64) -> String {
    format!(
        "default = \"tiny:f32\"\n\n[[model]]\nname = \"tiny\"\nrepo = \"{REPO}\"\nrevision = \"main\"\n\
         default_profile = \"f32\"\n\n[model.profiles]\nf32 = {{ file_gb = 0.04, ram_gb = {ram_gb} }}\n\
         q8_0 = {{ file_gb = 0.01, ram_gb = {ram_gb} }}\n"
    )
}

fn text_only_case() -> (String, String) {
    let case = cases("tiny-untied")
        .into_iter()
        .find(|c| c.name == "text_only")
        .expect("the text_only case");
    let question = case.messages[0]["content"][0]["text"]
        .as_str()
        .expect("a question")
        .to_owned();
    let tokenizer =
        glimpse::chat::Tokenizer::from_json_bytes(&std::fs::read(tokenizer_json()).unwrap())
            .unwrap();
    (
        question,
        tokenizer.decode(&case.greedy_tokens, true).unwrap(),
    )
}

#[test]
fn the_default_model_is_downloaded_converted_once_and_answers() {
    let (endpoint, requests) = stand_in_hub(checkpoint_dir("tiny-untied"));
    let sandbox = Sandbox::new("default", &catalogue(0.3));
    let (question, expected) = text_only_case();
    let greedy = ["-p", &question, "--temperature", "0", "--max-tokens", "32"];
    let args: Vec<&str> = ["run"].into_iter().chain(greedy).collect();
    let first = sandbox.glimpse(&endpoint, &args);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        format!("{expected}\n")
    );
    assert!(stderr.contains(&format!("fetching {REPO}")), "{stderr}");
    assert!(sandbox.root.join("cache/converted/tiny-f32.gguf").is_file());
    let downloads = requests.load(Ordering::SeqCst);
    assert!(downloads > 0);

    let args: Vec<&str> = ["run", "-m", "tiny"].into_iter().chain(greedy).collect();
    let again = sandbox.glimpse(&endpoint, &args);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        format!("{expected}\n")
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        downloads,
        "the second run used the hub"
    );
}

#[test]
fn an_unreachable_hub_says_what_to_download_and_how_to_pass_it() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let sandbox = Sandbox::new("offline", &catalogue(0.3));
    let out = sandbox.glimpse(&endpoint, &["run", "-m", "tiny:q8_0", "-p", "hi"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let download = format!("cannot download '{REPO}'");
    for needle in [download.as_str(), "--local-dir", "-m DIR", "-m FILE.gguf"] {
        assert!(stderr.contains(needle), "{needle:?} missing: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_profile_larger_than_the_memory_is_refused_before_loading() {
    let sandbox = Sandbox::new("memory", &catalogue(100_000.0));
    let out = sandbox.glimpse("http://127.0.0.1:9", &["run", "-m", "tiny", "-p", "hi"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("needs about 100000.0 GB"), "{stderr}");
    assert!(stderr.contains("GLIMPSE_IGNORE_MEMORY"), "{stderr}");
    let unknown = sandbox.glimpse(
        "http://127.0.0.1:9",
        &["run", "-m", "nothing-here", "-p", "hi"],
    );
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("one of the catalogue's names (tiny)"),
        "{stderr}"
    );
}
