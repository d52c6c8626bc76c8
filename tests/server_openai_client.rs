//! The official `openai` Python package against `glimpse serve`: tests/openai_client.py
//! (run with the venv scripts/setup_test_deps.sh makes) sends a base64 image, plain and
//! streamed, and must get transformers' greedy answer and the right usage back.
use crate::common;
use crate::server_support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use server_support::*;

#[test]
fn official_openai_client_gets_the_fixture_answer_and_usage() {
    let server = TestServer::start(&["--api-key", "test-key"]);
    run_openai_client(&server, "test-key", json!({}));
}

/// Runs tests/openai_client.py against `server` (which takes `key`), with `extra` fields
/// merged into its case (e.g. `ca_file`).
pub fn run_openai_client(server: &TestServer, key: &str, extra: Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = common::test_venv_python();
    let model = server.get_with_key("/v1/models", key).json()["data"][0]["id"].clone();
    let case = case("one_image_noresize");
    let question = case.messages[0]["content"][1]["text"].clone();
    let mut test = json!({
        "base_url": server.base,
        "api_key": key,
        "model": model,
        "image": common::fixtures().join("images/noresize_256x320.png"),
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
        .arg(root.join("tests/openai_client.py"))
        .env("GLIMPSE_OPENAI_TEST", test.to_string())
        .output()
        .expect("running tests/openai_client.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "openai_client.py failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("client: ok"), "{stdout}");
}
