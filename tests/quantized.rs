//! Reduced-precision profiles against the f32 ground truth on the fixture models: f16
//! log-probs stay within 1e-2 of transformers' and f16 picks transformers' greedy token at
//! every step of every fixture conversation (teacher-forced along the f32 greedy path).
mod common;

use common::*;
use glimpse::engine::sampler::{argmax, log_softmax};
use glimpse::engine::{ModelBundle, Session, Timings};

/// (steps where the model's argmax equals the fixture's greedy token, total steps), and
/// the largest final-position log-prob difference from transformers.
fn agreement(config: &str, out_type: &str) -> (usize, usize, f32) {
    glimpse::engine::threads::init_thread_pool(None).unwrap();
    let bundle = ModelBundle::load(&converted(config, out_type)).unwrap();
    let expected = read_f32_tensors(&fixtures().join(config).join("expected.safetensors"));
    let (mut agree, mut total, mut worst) = (0, 0, 0.0f32);
    for case in cases(config) {
        let (messages, paths) = messages(&case);
        let pixels = load_pixels(&paths, &bundle);
        let (prompt, images) = bundle.prompt(&messages, &pixels).unwrap();
        let mut session = Session::new(&bundle);
        let mut logits = session
            .prefill(&prompt, &images, &mut Timings::default())
            .unwrap();
        let reference = &expected[&format!("{}.final_logprobs", case.name)].1;
        worst = worst.max(max_abs_diff(&log_softmax(&logits), reference));
        for (step, &token) in case.greedy_tokens.iter().enumerate() {
            agree += usize::from(argmax(&logits) == token);
            total += 1;
            if step + 1 < case.greedy_tokens.len() {
                logits = session.decode_step(token).unwrap();
            }
        }
    }
    (agree, total, worst)
}

#[test]
fn f16_log_probs_stay_within_1e_2_of_transformers() {
    for config in CONFIGS {
        let (agree, total, worst) = agreement(config, "f16");
        assert!(
            worst <= 1e-2,
            "{config}: f16 final log-softmax differs by {worst}"
        );
        assert_eq!(
            agree, total,
            "{config}: f16 greedy agreement {agree}/{total}"
        );
    }
}
