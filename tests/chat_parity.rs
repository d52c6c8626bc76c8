//! glimpse::chat against transformers: for every conversation in the tiny checkpoints' fixtures
//! (tests/fixtures/{tiny-tied,tiny-untied}/cases.json, written by scripts/make_fixtures.py), the
//! chat template renders the same prompt text, build_prompt gives the same input ids, and the
//! greedy tokens decode (at once and streamed) to the same text.

use std::path::{Path, PathBuf};

use glimpse::chat::{
    build_prompt, ChatTemplate, Content, ImageRef, MediaTokens, Message, Part, SpecialTokens,
    TemplateArgs, Tokenizer, ToolCall,
};
use serde::Deserialize;

const CONFIGS: [&str; 4] = [
    "tiny-tied",
    "tiny-untied",
    "tiny-moe-tied",
    "tiny-moe-untied",
];

#[derive(Deserialize)]
struct Case {
    name: String,
    messages: Vec<HfMessage>,
    prompt_text: String,
    input_ids: Vec<u32>,
    image_grid_thw: Vec<[usize; 3]>,
    greedy_tokens: Vec<u32>,
    greedy_text: String,
}

#[derive(Deserialize)]
struct HfMessage {
    role: String,
    content: HfContent,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HfContent {
    Text(String),
    Parts(Vec<HfPart>),
}

#[derive(Deserialize)]
struct HfPart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct ChatTemplateJson {
    chat_template: String,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(path: &Path, how_to_get_it: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}; {how_to_get_it}", path.display()))
}

fn tokenizer() -> Tokenizer {
    let path = fixtures().join("tokenizer/tokenizer.json");
    let json = read(
        &path,
        "run scripts/fetch_tokenizer.sh to fetch the Qwen tokenizer",
    );
    Tokenizer::from_json_bytes(&json).unwrap()
}

/// The checkpoint's chat template and its cases.
fn load(config: &str) -> (ChatTemplate, Vec<Case>) {
    let dir = fixtures().join(config);
    let regenerate = "run scripts/make_fixtures.py to generate the transformers fixtures";
    let template_json = read(&dir.join("checkpoint/chat_template.json"), regenerate);
    let template: ChatTemplateJson = serde_json::from_slice(&template_json).unwrap();
    let cases: Vec<Case> =
        serde_json::from_slice(&read(&dir.join("cases.json"), regenerate)).unwrap();
    assert!(!cases.is_empty(), "{config}: cases.json has no cases");
    (ChatTemplate::new(&template.chat_template).unwrap(), cases)
}

/// An HF-format message content as glimpse's; `images` counts the images seen so far
/// (they are numbered in order of appearance).
fn content(content: &HfContent, images: &mut usize, case: &str) -> Content {
    match content {
        HfContent::Text(text) => Content::Text(text.clone()),
        HfContent::Parts(parts) => Content::Parts(
            parts
                .iter()
                .map(|part| match (part.kind.as_str(), &part.text) {
                    ("text", Some(text)) => Part::Text(text.clone()),
                    ("image", _) => {
                        *images += 1;
                        Part::Image(ImageRef(*images - 1))
                    }
                    (kind, _) => panic!("{case}: unexpected content part '{kind}'"),
                })
                .collect(),
        ),
    }
}

/// The HF-format conversation as glimpse messages; images are numbered in order of appearance.
fn messages(case: &Case) -> Vec<Message> {
    let mut images = 0;
    case.messages
        .iter()
        .map(|message| {
            let content = content(&message.content, &mut images, &case.name);
            Message::with_role_name(&message.role, content).unwrap()
        })
        .collect()
}

#[test]
fn rendered_prompt_text_matches_transformers() {
    for config in CONFIGS {
        let (template, cases) = load(config);
        for case in &cases {
            let rendered = template.render(&messages(case), true).unwrap();
            assert_eq!(rendered, case.prompt_text, "{config}/{}", case.name);
        }
    }
}

#[test]
fn prompt_ids_with_expanded_image_pads_match_transformers() {
    let tokenizer = tokenizer();
    let special = SpecialTokens::from_tokenizer(&tokenizer).unwrap();
    for config in CONFIGS {
        let (template, cases) = load(config);
        for case in &cases {
            let counts: Vec<usize> = case
                .image_grid_thw
                .iter()
                .map(|[t, h, w]| t * h * w / 4)
                .collect();
            let media: Vec<MediaTokens> = counts.iter().copied().map(MediaTokens::Image).collect();
            let prompt =
                build_prompt(&template, &tokenizer, &messages(case), &media, &special).unwrap();
            assert_eq!(prompt.ids, case.input_ids, "{config}/{}", case.name);
            let span_lens: Vec<usize> = prompt.vision_spans.iter().map(|span| span.len()).collect();
            assert_eq!(span_lens, counts, "{config}/{}", case.name);
        }
    }
}

#[test]
fn greedy_tokens_decode_to_transformers_text_at_once_and_streamed() {
    let tokenizer = tokenizer();
    for config in CONFIGS {
        let (_, cases) = load(config);
        for case in &cases {
            let decoded = tokenizer.decode(&case.greedy_tokens, false).unwrap();
            assert_eq!(decoded, case.greedy_text, "{config}/{}", case.name);

            let mut stream = tokenizer.stream_decoder(false);
            let mut streamed = String::new();
            for &id in &case.greedy_tokens {
                streamed.extend(stream.push(id).unwrap());
            }
            streamed.push_str(&stream.finish().unwrap());
            assert_eq!(streamed, case.greedy_text, "{config}/{}", case.name);
        }
    }
}

/// One conversation of tests/fixtures/thinking/renders.json
/// (scripts/make_thinking_template_fixture.py).
#[derive(Deserialize)]
struct ThinkingCase {
    name: String,
    /// "thinking" or "instruct".
    template: String,
    messages: Vec<ThinkingMessage>,
    tools: Vec<serde_json::Value>,
    add_generation_prompt: bool,
    /// Keyword arguments of `apply_chat_template` (`chat_template_kwargs`).
    kwargs: serde_json::Map<String, serde_json::Value>,
    rendered: String,
}

#[derive(Deserialize)]
struct ThinkingMessage {
    role: String,
    content: HfContent,
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ThinkingToolCall>,
}

#[derive(Deserialize)]
struct ThinkingToolCall {
    name: String,
    arguments: String,
}

#[derive(Deserialize)]
struct ThinkingFixture {
    cases: Vec<ThinkingCase>,
}

#[test]
fn the_official_thinking_template_and_template_kwargs_render_as_transformers_does() {
    let fixture: ThinkingFixture = serde_json::from_slice(&read(
        &fixtures().join("thinking/renders.json"),
        "run scripts/make_thinking_template_fixture.py",
    ))
    .unwrap();
    let thinking = ChatTemplate::new(glimpse::chat::QWEN3_VL_THINKING_CHAT_TEMPLATE).unwrap();
    let instruct = ChatTemplate::new(glimpse::chat::QWEN3_VL_CHAT_TEMPLATE).unwrap();
    for case in &fixture.cases {
        let template = match case.template.as_str() {
            "thinking" => &thinking,
            "instruct" => &instruct,
            other => panic!("{}: unknown template {other}", case.name),
        };
        let mut images = 0;
        let messages: Vec<Message> = case
            .messages
            .iter()
            .map(|message| {
                let content = content(&message.content, &mut images, &case.name);
                let calls = message
                    .tool_calls
                    .iter()
                    .map(|call| ToolCall {
                        name: call.name.clone(),
                        arguments: call.arguments.clone(),
                    })
                    .collect();
                Message::with_role_name(&message.role, content)
                    .unwrap()
                    .with_tool_calls(calls)
                    .with_reasoning(message.reasoning_content.clone())
            })
            .collect();
        let args = TemplateArgs {
            tools: &case.tools,
            kwargs: Some(&case.kwargs),
        };
        let rendered = template
            .render_with(&messages, args, case.add_generation_prompt)
            .unwrap();
        assert_eq!(rendered, case.rendered, "{}", case.name);
    }
}
