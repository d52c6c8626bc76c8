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

/// A fixture conversation's rendered prompt, sent as a legacy completion's raw prompt,
/// is read as exactly its tokens and continued with transformers' greedy answer; the
/// tokenize endpoints agree with the fixture's ids.
#[test]
fn legacy_completions_and_tokenize_follow_the_fixture_tokens() {
    let server = TestServer::start(&[]);
    let case = case("text_only");
    let post = |path: &str, body: &serde_json::Value| {
        let answer = server.post_raw(path, body.to_string().as_bytes(), None);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        answer.json()
    };
    let tokens = post("/tokenize", &json!({"content": case.prompt_text}));
    assert_eq!(tokens["tokens"], json!(case.input_ids));
    assert_eq!(tokens["count"], case.input_ids.len());
    let rendered = post("/tokenize", &json!({"messages": case.messages}));
    assert_eq!(
        rendered["tokens"],
        json!(case.input_ids),
        "messages go through the template"
    );
    let text = post("/detokenize", &json!({"tokens": case.input_ids}));
    assert_eq!(text["content"], case.prompt_text);
    let pieces = post(
        "/tokenize",
        &json!({"content": "Hello", "with_pieces": true}),
    );
    assert_eq!(pieces["tokens"][0]["piece"], "Hello");

    let completion = post(
        "/v1/completions",
        &json!({"prompt": case.prompt_text, "max_tokens": case.greedy_tokens.len(), "temperature": 0}),
    );
    assert_eq!(completion["object"], "text_completion");
    assert_eq!(completion["choices"][0]["text"], expected_text(&case));
    assert_eq!(completion["usage"]["prompt_tokens"], case.input_ids.len());
    let streamed = server.stream_at("/v1/completions", &json!({
        "prompt": case.prompt_text, "max_tokens": case.greedy_tokens.len(), "temperature": 0, "stream": true
    }));
    let text: String = streamed
        .iter()
        .filter_map(|event| event["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, expected_text(&case));
    server
        .post_raw("/v1/completions", br#"{"prompt": "<|image_pad|>"}"#, None)
        .assert_error(400, "invalid_prompt");
}

/// The tiny fixture checkpoint converted with the official Thinking chat template, and a
/// generation_config.json that asks for greedy decoding (`do_sample: false`), so a request
/// that sets no sampling field is greedy: the server takes its defaults from the model file.
fn thinking_model() -> std::path::PathBuf {
    let dir = crate::common::scratch_dir("thinking-checkpoint");
    for entry in
        std::fs::read_dir(crate::common::checkpoint_dir("tiny-untied")).expect("checkpoint")
    {
        let entry = entry.expect("an entry");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copying");
    }
    let template = json!({"chat_template": glimpse::chat::QWEN3_VL_THINKING_CHAT_TEMPLATE});
    std::fs::write(dir.join("chat_template.json"), template.to_string()).expect("writing");
    let generation =
        json!({"eos_token_id": [151645, 151643], "do_sample": false, "top_k": 20, "top_p": 0.95});
    std::fs::write(dir.join("generation_config.json"), generation.to_string()).expect("writing");
    let model = dir.join("thinking.gguf");
    let status = crate::common::glimpse_command()
        .args(["convert", "--quiet", "-o"])
        .arg(&model)
        .arg(&dir)
        .status()
        .expect("glimpse convert");
    assert!(status.success());
    model
}

/// With a thinking model the prompt opens `<think>` and what the model writes up to
/// `</think>` comes back as `reasoning_content`: here the random model never closes it, so
/// the whole continuation (the same tokens a raw completion of the rendered prompt gives)
/// is reasoning, whole and streamed.
#[test]
fn a_thinking_models_answer_comes_back_as_reasoning_content() {
    let server = TestServer::start_model(&thinking_model(), &[], &[]);
    let messages = json!([{"role": "user", "content": "Why is the sky blue?"}]);
    let post = |path: &str, body: serde_json::Value| {
        let answer = server.post_raw(path, body.to_string().as_bytes(), None);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        answer.json()
    };
    let prompt = post("/tokenize", json!({"messages": messages}));
    let prompt_text = post("/detokenize", json!({"tokens": prompt["tokens"]}))["content"].clone();
    let prompt_text = prompt_text.as_str().expect("text");
    assert!(
        prompt_text.ends_with("<|im_start|>assistant\n<think>\n"),
        "{prompt_text:?}"
    );
    let raw = post(
        "/v1/completions",
        json!({"prompt": prompt_text, "max_tokens": 12, "temperature": 0}),
    );
    let raw_text = raw["choices"][0]["text"].as_str().expect("text").to_owned();
    assert!(
        !raw_text.contains("</think>"),
        "the random model closed its thought: {raw_text:?}"
    );

    // No temperature: the file's greedy default.
    let chat = post(
        "/v1/chat/completions",
        json!({"messages": messages, "max_tokens": 12}),
    );
    let message = &chat["choices"][0]["message"];
    assert_eq!(message["reasoning_content"], raw_text.trim_matches('\n'));
    assert_eq!(message["content"], "");
    let events = server.stream(&json!({"messages": messages, "max_tokens": 12, "temperature": 0}));
    let streamed: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(streamed, raw_text);
    assert!(events.iter().all(|e| e["choices"][0]["delta"]["content"]
        .as_str()
        .is_none_or(str::is_empty)));

    // Ollama: the reasoning is `thinking` (in `message`, or beside `response`).
    let reasoning = raw_text.trim_matches('\n');
    let ollama = json!({"model": "m", "messages": messages, "stream": false, "options": {"num_predict": 12}});
    let chat = post("/api/chat", ollama.clone());
    assert_eq!(chat["message"]["thinking"], reasoning);
    assert_eq!(chat["message"]["content"], "");
    let generate = post(
        "/api/generate",
        json!({"model": "m", "prompt": "Why is the sky blue?", "stream": false, "think": true, "options": {"num_predict": 12}}),
    );
    assert_eq!(generate["thinking"], reasoning);
    assert_eq!(generate["response"], "");
    let mut streaming = ollama;
    streaming["stream"] = json!(true);
    let lines = server.post_raw("/api/chat", streaming.to_string().as_bytes(), None);
    let lines: Vec<serde_json::Value> = lines
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    let thinking: String = lines
        .iter()
        .filter_map(|l| l["message"]["thinking"].as_str())
        .collect();
    assert_eq!(thinking, raw_text);
    assert_eq!(lines.last().expect("a last line")["done"], true);
    let refused = json!({"model": "m", "messages": messages, "stream": false, "think": false});
    let refused = server.post_raw("/api/chat", refused.to_string().as_bytes(), None);
    assert_eq!(refused.status, 400);
    assert!(refused.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("always thinks")));

    // Anthropic: a `thinking` block, then the (empty) text block, whole and streamed.
    let anthropic = json!({"model": "m", "max_tokens": 12, "messages": messages, "thinking": {"type": "enabled", "budget_tokens": 1024}});
    let message = post("/v1/messages", anthropic.clone());
    assert_eq!(
        message["content"],
        json!([{"type": "thinking", "thinking": reasoning, "signature": ""}, {"type": "text", "text": ""}])
    );
    let mut stream = server.open_stream_at("/v1/messages", &anthropic);
    let mut events = Vec::new();
    while let Some(event) = stream.next_event() {
        events.push(event);
    }
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e["type"].as_str().expect("a type") {
            "content_block_start" => format!(
                "start {}",
                e["content_block"]["type"].as_str().unwrap_or("?")
            ),
            "content_block_delta" => {
                format!("delta {}", e["delta"]["type"].as_str().unwrap_or("?"))
            }
            other => other.to_owned(),
        })
        .collect::<Vec<_>>();
    let mut distinct = kinds.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        [
            "message_start",
            "start thinking",
            "ping",
            "delta thinking_delta",
            "content_block_stop",
            "start text",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{kinds:?}"
    );
    let thought: String = events
        .iter()
        .filter_map(|e| e["delta"]["thinking"].as_str())
        .collect();
    assert_eq!(thought, raw_text);
}

/// `chat_template_kwargs` reach the chat template: `add_vision_id` labels each image
/// "Picture N: " (tests/fixtures/thinking renders it as transformers does), so the prompt
/// grows by those tokens; variables the server sets cannot be overridden.
#[test]
fn chat_template_kwargs_reach_the_template() {
    let server = TestServer::start(&[]);
    let image = data_uri(&crate::common::fixtures().join("images/small_64x96.png"));
    let request = |kwargs: Option<serde_json::Value>| {
        let mut body = json!({
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image}},
                {"type": "text", "text": "What is it?"}
            ]}],
            "max_tokens": 1,
            "temperature": 0
        });
        if let Some(kwargs) = kwargs {
            body["chat_template_kwargs"] = kwargs;
        }
        server.post_raw("/v1/chat/completions", body.to_string().as_bytes(), None)
    };
    let prompt_tokens = |answer: Answer| {
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()["usage"]["prompt_tokens"]
            .as_u64()
            .expect("a count")
    };
    let plain = prompt_tokens(request(None));
    let labelled = prompt_tokens(request(Some(json!({"add_vision_id": true}))));
    let label = server.post_raw("/tokenize", br#"{"content": "Picture 1: "}"#, None);
    assert_eq!(
        labelled - plain,
        label.json()["count"].as_u64().expect("a count")
    );
    assert_eq!(
        prompt_tokens(request(Some(json!({"add_vision_id": false})))),
        plain
    );
    for refused in [
        json!({"add_generation_prompt": false}),
        json!({"messages": []}),
        json!(["add_vision_id"]),
    ] {
        request(Some(refused)).assert_error(400, "invalid_field");
    }
    let tokenized = server.post_raw(
        "/tokenize",
        json!({"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"tools": []}}).to_string().as_bytes(),
        None,
    );
    tokenized.assert_error(400, "invalid_field");
}
