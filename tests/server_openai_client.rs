//! The official `openai` Python package against `glimpse serve`: tests/openai_client.py
//! (run with the venv scripts/setup_test_deps.sh makes) sends a base64 image, plain and
//! streamed, and must get transformers' greedy answer and the right usage back.
use crate::server_support;

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
    run_client_script("openai_client.py", server, key, extra);
}
