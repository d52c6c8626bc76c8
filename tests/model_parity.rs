//! End-to-end numerical parity with Hugging Face transformers on the fixture models:
//! each fixture checkpoint is converted with `glimpse convert`, loaded from the GGUF,
//! and must reproduce transformers' prompt ids, vision features, final log-probs and
//! greedy continuation for every fixture conversation (dense and mixture-of-experts models).
use crate::common;

use std::sync::Arc;

use common::*;
use glimpse::engine::sampler::log_softmax;
use glimpse::engine::session::image_key;
use glimpse::engine::{ModelBundle, Session, Timings};
use glimpse::model::SequenceStep;

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
        // The MoE fixtures also hold the exact answer (transformers in float64): their f32
        // rounding alone reaches the tolerance, so glimpse is held to the exact log-probs.
        let exact = format!("{}.final_logprobs_exact", case.name);
        let reference = expected
            .get(&exact)
            .unwrap_or_else(|| &expected[&format!("{}.final_logprobs", case.name)]);
        let diff = max_abs_diff(&log_softmax(&logits), &reference.1);
        assert!(
            diff <= 1e-3,
            "{config}/{}: final log-softmax differs by {diff}",
            case.name
        );

        let tokens = greedy_answer(&bundle, &prompt, &images, case.greedy_tokens.len());
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

/// The mixture-of-experts decoder (Qwen3VLMoeForConditionalGeneration, 8 experts, 2 per
/// token), converted to llama.cpp's `qwen3vlmoe` layout. Held to transformers run in float64:
/// on `system_prompt` of the tied fixture glimpse's f32 answer is 9e-4 from it and
/// transformers' own f32 answer 7.6e-4, in opposite directions (1.37e-3 apart).
#[test]
fn tied_mixture_of_experts_matches_transformers_on_every_fixture_conversation() {
    check_config("tiny-moe-tied");
}

#[test]
fn untied_mixture_of_experts_matches_transformers_on_every_fixture_conversation() {
    check_config("tiny-moe-untied");
}

/// Batch invariance at f32: conversations run through shared model steps (their
/// prompts in one pass, then their answers a token each per pass) get the very bits each
/// gets alone.
#[test]
// `step` indexes each conversation's own list of logits, inside the loop over conversations.
#[allow(clippy::needless_range_loop)]
fn a_shared_step_gives_each_conversation_the_bits_it_gets_alone() {
    glimpse::engine::threads::init_thread_pool(None).unwrap();
    let bundle = ModelBundle::load(&converted("tiny-untied", "f32"), None).unwrap();
    // The first three conversations (of those GLIMPSE_PARITY_CASES keeps): text and images.
    let cases: Vec<_> = parity_cases("tiny-untied").into_iter().take(3).collect();
    assert!(
        cases.len() >= 2,
        "the invariance check needs two conversations at least"
    );
    let inputs: Vec<_> = cases
        .iter()
        .map(|case| {
            let (messages, paths) = messages(case);
            let pixels = load_pixels(&paths, &bundle);
            let (prompt, _) = bundle.prompt(&messages, &pixels).unwrap();
            (prompt, pixels)
        })
        .collect();
    const STEPS: usize = 4;
    let argmax = |logits: &[f32]| {
        (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap() as u32
    };
    // Alone: the prompt's logits, then STEPS greedy decode steps.
    let alone: Vec<Vec<Vec<f32>>> = inputs
        .iter()
        .map(|(prompt, pixels)| {
            let images: Vec<_> = pixels.iter().collect();
            let mut session = Session::new(&bundle);
            let mut logits = vec![session
                .prefill(prompt, &images, &mut Timings::default())
                .unwrap()];
            for _ in 0..STEPS {
                let next = argmax(logits.last().unwrap());
                logits.push(session.decode_step(next).unwrap());
            }
            logits
        })
        .collect();
    // Together (the images' encoder outputs come from the vision cache the runs above filled).
    let mut sessions: Vec<Session> = inputs.iter().map(|_| Session::new(&bundle)).collect();
    let mut pending: Vec<_> = sessions
        .iter_mut()
        .zip(&inputs)
        .map(|(session, (prompt, pixels))| {
            let images: Vec<_> = pixels.iter().collect();
            let keys: Vec<u64> = images.iter().map(|p| image_key(p)).collect();
            let pending = session
                .begin_prompt(prompt, &images, &keys, &mut Timings::default())
                .unwrap();
            assert!(pending.images_ready());
            pending
        })
        .collect();
    let counts: Vec<usize> = pending.iter().map(|p| p.remaining()).collect();
    let mut steps: Vec<_> = sessions
        .iter_mut()
        .zip(&pending)
        .zip(&counts)
        .map(|((session, pending), &count)| session.prompt_step(pending, count))
        .collect();
    // One shared model step: every conversation's logits.
    let run = |steps: &mut [SequenceStep]| -> Vec<Vec<f32>> {
        let logits = bundle.model.step(steps).unwrap();
        logits.into_iter().map(Option::unwrap).collect()
    };
    let mut logits = run(&mut steps);
    drop(steps);
    for ((session, pending), count) in sessions.iter_mut().zip(&mut pending).zip(counts) {
        session.commit_prompt(pending, count);
    }
    for step in 0..=STEPS {
        for (i, case) in cases.iter().enumerate() {
            assert!(
                logits[i] == alone[i][step],
                "{}: step {step} differs from the conversation alone",
                case.name
            );
        }
        if step == STEPS {
            break;
        }
        let next: Vec<u32> = logits.iter().map(|l| argmax(l)).collect();
        let mut steps: Vec<_> = sessions
            .iter_mut()
            .zip(&next)
            .map(|(session, &token)| session.decode_input(token))
            .collect();
        logits = run(&mut steps);
        drop(steps);
        for (session, &token) in sessions.iter_mut().zip(&next) {
            session.commit_decode(token);
        }
    }
}
