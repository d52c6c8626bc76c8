//! End-to-end numerical parity with Hugging Face transformers on the fixture models:
//! each fixture checkpoint is converted with `glimpse convert`, loaded from the GGUF,
//! and must reproduce transformers' prompt ids, vision features, final log-probs and
//! greedy continuation for every fixture conversation.
use crate::common;

use std::ops::ControlFlow;
use std::sync::Arc;

use common::*;
use glimpse::engine::sampler::log_softmax;
use glimpse::engine::session::image_key;
use glimpse::engine::{GenerationParams, ModelBundle, SamplingParams, Session, Timings};

fn check_config(config: &str) {
    glimpse::engine::threads::init_thread_pool(None).unwrap();
    let bundle = ModelBundle::load(&converted(config, "f32"), None).unwrap();
    let expected = read_f32_tensors(&fixtures().join(config).join("expected.safetensors"));
    for case in parity_cases(config) {
        let (messages, paths) = messages(&case);
        let pixels = load_pixels(&paths, &bundle);
        let (prompt, images) = bundle.prompt(&messages, &pixels).unwrap();
        assert_eq!(
            prompt.ids, case.input_ids,
            "{config}/{}: prompt ids",
            case.name
        );
        let grids: Vec<[usize; 3]> = images.iter().map(|p| p.grid_thw).collect();
        assert_eq!(
            grids, case.image_grid_thw,
            "{config}/{}: image_grid_thw",
            case.name
        );

        if !images.is_empty() {
            // Each image is encoded once: the checked output goes into the bundle's vision
            // cache, where the prefill below finds it.
            let outputs: Vec<_> = images
                .iter()
                .map(|p| {
                    let output = Arc::new(
                        bundle
                            .model
                            .vision
                            .encode(&p.data, p.grid_thw[1], p.grid_thw[2])
                            .unwrap(),
                    );
                    bundle.vision_cache.insert(image_key(p), output.clone());
                    output
                })
                .collect();
            let embeds: Vec<f32> = outputs
                .iter()
                .flat_map(|o| o.embeddings.iter().copied())
                .collect();
            let diff = max_abs_diff(
                &embeds,
                &expected[&format!("{}.vision_embeds", case.name)].1,
            );
            assert!(
                diff <= 1e-4,
                "{config}/{}: vision embeddings differ by {diff}",
                case.name
            );
            for k in 0..outputs[0].deepstack.len() {
                let features: Vec<f32> = outputs
                    .iter()
                    .flat_map(|o| o.deepstack[k].iter().copied())
                    .collect();
                let diff = max_abs_diff(
                    &features,
                    &expected[&format!("{}.deepstack.{k}", case.name)].1,
                );
                assert!(
                    diff <= 1e-4,
                    "{config}/{}: deepstack {k} differs by {diff}",
                    case.name
                );
            }
        }

        let mut session = Session::new(&bundle);
        let logits = session
            .prefill(&prompt, &images, &mut Timings::default())
            .unwrap();
        let diff = max_abs_diff(
            &log_softmax(&logits),
            &expected[&format!("{}.final_logprobs", case.name)].1,
        );
        assert!(
            diff <= 1e-3,
            "{config}/{}: final log-softmax differs by {diff}",
            case.name
        );

        let mut session = Session::new(&bundle);
        let params = GenerationParams {
            max_tokens: case.greedy_tokens.len(),
            sampling: SamplingParams::greedy(),
        };
        let out = session
            .generate(&prompt, &images, &params, |_| ControlFlow::Continue(()))
            .unwrap();
        let mut tokens = out.tokens.clone();
        tokens.extend(out.stop_token);
        assert_eq!(
            tokens, case.greedy_tokens,
            "{config}/{}: greedy tokens",
            case.name
        );
    }
}

#[test]
fn tied_model_matches_transformers_on_every_fixture_conversation() {
    check_config("tiny-tied");
}

#[test]
fn untied_model_matches_transformers_on_every_fixture_conversation() {
    check_config("tiny-untied");
}
