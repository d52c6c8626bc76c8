//! The other APIs on the same port, driven by their official Python clients from the test
//! venv: Anthropic's Messages API (`anthropic`) and Ollama's (`ollama`), each answering
//! the fixture's greedy image question with transformers' tokens.
use crate::server_support;

use serde_json::json;
use server_support::*;

#[test]
fn official_anthropic_client_gets_the_fixture_answer_whole_and_streamed() {
    let server = TestServer::start(&["--api-key", "anthropic-key"]);
    run_client_script("anthropic_client.py", &server, "anthropic-key", json!({}));
}

#[test]
fn official_ollama_client_gets_the_fixture_answer_from_chat_and_generate() {
    let server = TestServer::start(&["--api-key", "ollama-key"]);
    run_client_script("ollama_client.py", &server, "ollama-key", json!({}));
}

#[test]
fn every_json_schema_answer_parses_and_validates() {
    let server = TestServer::start(&["--api-key", "schema-key"]);
    run_client_script("structured_output.py", &server, "schema-key", json!({}));
}
