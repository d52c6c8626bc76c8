//! Per-request image resolution over HTTP: `min_pixels` / `max_pixels` (request-wide or on
//! one image), `detail`, and the server's `--image-min-tokens` / `--image-max-tokens` give
//! each image exactly the vision tokens transformers' processor gives for the same bounds
//! (the `grids` table of tests/fixtures/images/expected.json, from scripts/make_fixtures.py).
use crate::common;
use crate::server_support;

use serde::Deserialize;
use serde_json::{json, Value};
use server_support::*;

#[derive(Deserialize)]
struct Grid {
    image: String,
    min_pixels: usize,
    max_pixels: usize,
    image_grid_thw: [usize; 3],
}

fn grids() -> Vec<Grid> {
    #[derive(Deserialize)]
    struct Expected {
        grids: Vec<Grid>,
    }
    let path = common::fixtures().join("images/expected.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<Expected>(&text).unwrap().grids
}

/// transformers' `<|image_pad|>` count for an image: the grid over the 2×2 merge.
fn hf_tokens(grid: &Grid) -> usize {
    grid.image_grid_thw.iter().product::<usize>() / 4
}

fn request(image: &str, part_extra: Value, request_extra: Value) -> Value {
    let mut part = data_uri_part(&common::fixtures().join("images").join(image));
    if let (Value::Object(part), Value::Object(extra)) = (&mut part, part_extra) {
        part.extend(extra);
    }
    let mut body = json!({
        "model": "tiny",
        "messages": [{"role": "user", "content": [part, {"type": "text", "text": "What is this?"}]}],
        "temperature": 0,
        "max_tokens": 1,
    });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, request_extra) {
        body.extend(extra);
    }
    body
}

/// `(prompt_tokens, image_tokens)` of a request's answer.
fn token_counts(server: &TestServer, body: &Value) -> (u64, u64) {
    let usage = server.complete(body)["usage"].clone();
    let image = usage["prompt_tokens_details"]["image_tokens"].as_u64();
    (usage["prompt_tokens"].as_u64().unwrap(), image.unwrap())
}

#[test]
fn request_bounds_give_the_hf_processor_token_counts() {
    let server = TestServer::start(&[]);
    let mut text_tokens = None;
    for grid in grids() {
        let bounds = json!({"min_pixels": grid.min_pixels, "max_pixels": grid.max_pixels});
        let (prompt, image) = token_counts(&server, &request(&grid.image, json!({}), bounds));
        let case = format!(
            "{} with {}..{}",
            grid.image, grid.min_pixels, grid.max_pixels
        );
        assert_eq!(image as usize, hf_tokens(&grid), "{case}");
        // The text around the image is the same in every request.
        let text = prompt - image;
        assert_eq!(*text_tokens.get_or_insert(text), text, "{case}");
    }
}

#[test]
fn image_bounds_and_detail_override_the_request_and_server_defaults() {
    let grids = grids();
    let find = |image: &str, min: usize, max: usize| {
        let grid = grids
            .iter()
            .find(|g| g.image == image && g.min_pixels == min && g.max_pixels == max)
            .expect("grid in the fixture");
        hf_tokens(grid) as u64
    };
    let image = "odd_333x517.png";
    // Server defaults of 4..32 tokens = 4096..32768 pixels.
    let server = TestServer::start(&["--image-min-tokens", "4", "--image-max-tokens", "32"]);
    let tokens = |part: Value, request_extra: Value| {
        token_counts(&server, &request(image, part, request_extra)).1
    };
    let small = find(image, 4096, 32768);
    let large = find(image, 65536, 16777216);
    assert!(small < large);
    assert_eq!(tokens(json!({}), json!({})), small, "server default");
    let wide = json!({"min_pixels": 65536, "max_pixels": 16777216});
    assert_eq!(
        tokens(json!({}), wide.clone()),
        large,
        "request-wide bounds"
    );
    // qwen-vl-utils style bounds on the part win over the request's.
    let part_bounds = json!({"min_pixels": 4096, "max_pixels": 32768});
    assert_eq!(tokens(part_bounds, wide), small, "bounds on the image part");
    // OpenAI's detail: high allows the model's own maximum (this image then needs no resize,
    // as under the model's defaults); low caps at 256 tokens, here below the server's cap.
    let url = data_uri(&common::fixtures().join("images").join(image));
    let detail = |level: &str| json!({"image_url": {"url": url, "detail": level}});
    assert_eq!(tokens(detail("high"), json!({})), large, "detail high");
    assert_eq!(tokens(detail("low"), json!({})), small, "detail low");
    assert_eq!(tokens(detail("auto"), json!({})), small, "detail auto");

    let crossed = json!({"min_pixels": 200000, "max_pixels": 4096});
    let message = server
        .chat(&request(image, json!({}), crossed))
        .assert_error(400, "invalid_field");
    assert!(
        message.contains("min_pixels (200000) is larger than max_pixels (4096)"),
        "{message}"
    );
    let refused = server.chat(&request(image, json!({}), json!({"max_pixels": 0})));
    refused.assert_error(400, "invalid_field");
}
