//! Reduced-precision profiles against the f32 ground truth.
//!
//! On the tiny fixture models (dense and mixture of experts): f16 log-probs stay within 1e-2 of
//! transformers' and f16 picks transformers' greedy token at every step of every fixture
//! conversation (teacher-forced along the f32 greedy path). On the trained 256-wide fixtures
//! (`small-trained`, and `small-trained-moe` whose MLPs are mixtures of experts; their matrices fill
//! whole q4_K blocks and their predictions are as confident as a chat model's): f32 follows
//! transformers' greedy path, and f16 / q8_0 / q4_K agree with f32's top-1 token at ≥ 100 % /
//! 99 % / 95 % of the steps, run in lockstep with the f32 model.
use crate::common;

use common::*;
use glimpse::engine::sampler::{argmax, log_softmax};
use glimpse::engine::{ModelBundle, Session, Timings};

/// (steps where the model's argmax equals the fixture's greedy token, total steps), and
/// the largest final-position log-prob difference from transformers.
fn agreement(config: &str, out_type: &str) -> (usize, usize, f32) {
    glimpse::engine::threads::init_thread_pool(None).unwrap();
    let bundle = ModelBundle::load(&converted(config, out_type), None).unwrap();
    let expected = read_f32_tensors(&fixtures().join(config).join("expected.safetensors"));
    let (mut agree, mut total, mut worst) = (0, 0, 0.0f32);
    for case in cases(config) {
        let mut session = Session::new(&bundle);
        let mut logits = prefill(&bundle, &mut session, &case);
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

/// The logits at the last prompt position of a fixture case.
fn prefill(bundle: &ModelBundle, session: &mut Session, case: &Case) -> Vec<f32> {
    let (messages, paths) = messages(case);
    let pixels = load_pixels(&paths, bundle);
    let (prompt, images) = bundle.prompt(&messages, &pixels).unwrap();
    session
        .prefill(&prompt, &images, &mut Timings::default())
        .unwrap()
}

#[test]
fn f16_log_probs_stay_within_1e_2_of_transformers() {
    for config in CONFIGS
        .into_iter()
        .chain(["tiny-moe-tied", "tiny-moe-untied"])
    {
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

#[test]
fn f32_follows_transformers_greedy_path_on_the_trained_fixture() {
    let (agree, total) = agreement_with_margins(QUALITY_CONFIG);
    assert_eq!(agree, total, "f32 greedy agreement {agree}/{total}");
}

#[test]
fn f32_follows_transformers_greedy_path_on_the_trained_mixture_of_experts() {
    let (agree, total) = agreement_with_margins(MOE_QUALITY_CONFIG);
    assert_eq!(agree, total, "f32 greedy agreement {agree}/{total}");
}

/// Like `agreement` (without final log-probs, which this fixture does not store), also
/// checking glimpse's top-1/top-2 margin against transformers' at every step.
fn agreement_with_margins(config: &str) -> (usize, usize) {
    glimpse::engine::threads::init_thread_pool(None).unwrap();
    let bundle = ModelBundle::load(&converted(config, "f32"), None).unwrap();
    let (mut agree, mut total) = (0, 0);
    for case in cases(config) {
        let mut session = Session::new(&bundle);
        let mut logits = prefill(&bundle, &mut session, &case);
        for (step, (&token, &margin)) in case
            .greedy_tokens
            .iter()
            .zip(&case.greedy_margins)
            .enumerate()
        {
            agree += usize::from(argmax(&logits) == token);
            total += 1;
            let ours = top2_margin(&logits);
            assert!(
                (ours - margin).abs() <= 1e-3 * margin.abs().max(1.0),
                "{}: step {step}: margin {ours} vs transformers' {margin}",
                case.name
            );
            if step + 1 < case.greedy_tokens.len() {
                logits = session.decode_step(token).unwrap();
            }
        }
    }
    (agree, total)
}

fn top2_margin(logits: &[f32]) -> f32 {
    let (mut first, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &x in logits {
        if x > first {
            (first, second) = (x, first);
        } else if x > second {
            second = x;
        }
    }
    first - second
}

/// How a profile compares with f32 glimpse, both teacher-forced along transformers' greedy
/// path of every case of `config`.
#[derive(Debug, Default)]
struct Lockstep {
    agree: usize,
    total: usize,
    /// Steps where f32's top-1/top-2 margin is below 2 (the uncertain ones), and how many of
    /// those the profile agrees on.
    uncertain: usize,
    uncertain_agree: usize,
    mean_kl: f64,
    max_logprob_diff: f32,
}

impl Lockstep {
    /// Adds one step: the f32 reference's logits and the profile's.
    fn add(&mut self, reference_logits: &[f32], logits: &[f32]) {
        let agrees = argmax(logits) == argmax(reference_logits);
        self.agree += usize::from(agrees);
        self.total += 1;
        if top2_margin(reference_logits) < 2.0 {
            self.uncertain += 1;
            self.uncertain_agree += usize::from(agrees);
        }
        let (p, q) = (log_softmax(reference_logits), log_softmax(logits));
        self.max_logprob_diff = self.max_logprob_diff.max(max_abs_diff(&p, &q));
        let kl: f64 = p
            .iter()
            .zip(&q)
            .map(|(&a, &b)| f64::from(a.exp()) * f64::from(a - b))
            .sum();
        self.mean_kl += kl;
    }
}

/// Every profile of `out_types` against f32 glimpse, all run in lockstep with one f32
/// reference session per case (the reference is computed once for all profiles).
fn lockstep(config: &str, out_types: &[&str]) -> Vec<Lockstep> {
    glimpse::engine::threads::init_thread_pool(None).unwrap();
    let reference = ModelBundle::load(&converted(config, "f32"), None).unwrap();
    let bundles: Vec<ModelBundle> = out_types
        .iter()
        .map(|out_type| ModelBundle::load(&converted(config, out_type), None).unwrap())
        .collect();
    let mut results: Vec<Lockstep> = out_types.iter().map(|_| Lockstep::default()).collect();
    for case in cases(config) {
        let mut reference_session = Session::new(&reference);
        let mut sessions: Vec<Session> = bundles.iter().map(Session::new).collect();
        let mut reference_logits = prefill(&reference, &mut reference_session, &case);
        let mut logits: Vec<Vec<f32>> = bundles
            .iter()
            .zip(&mut sessions)
            .map(|(bundle, session)| prefill(bundle, session, &case))
            .collect();
        for (step, &token) in case.greedy_tokens.iter().enumerate() {
            for (result, logits) in results.iter_mut().zip(&logits) {
                result.add(&reference_logits, logits);
            }
            if step + 1 < case.greedy_tokens.len() {
                reference_logits = reference_session.decode_step(token).unwrap();
                for (session, logits) in sessions.iter_mut().zip(&mut logits) {
                    *logits = session.decode_step(token).unwrap();
                }
            }
        }
    }
    for result in &mut results {
        result.mean_kl /= result.total as f64;
    }
    results
}

#[test]
fn quantized_profiles_agree_with_f32_on_the_trained_fixture() {
    check_quantized_profiles(QUALITY_CONFIG);
}

/// The mixture-of-experts decoder (the 30B-A3B architecture): its expert matrices quantized
/// like the dense MLPs, held to the same agreement.
#[test]
fn quantized_profiles_agree_with_f32_on_the_trained_mixture_of_experts() {
    check_quantized_profiles(MOE_QUALITY_CONFIG);
}

fn check_quantized_profiles(config: &str) {
    let profiles = [("f16", 1.0), ("q8_0", 0.99), ("q4_k", 0.95)];
    let out_types: Vec<&str> = profiles.iter().map(|(out_type, _)| *out_type).collect();
    let results = lockstep(config, &out_types);
    for ((out_type, required), r) in profiles.into_iter().zip(results) {
        let share = r.agree as f64 / r.total as f64;
        eprintln!(
            "{config} {out_type}: top-1 agreement with f32 {}/{} ({:.1} %), on uncertain steps {}/{}, \
             mean KL {:.2e} nats, max log-prob diff {:.3}",
            r.agree,
            r.total,
            100.0 * share,
            r.uncertain_agree,
            r.uncertain,
            r.mean_kl,
            r.max_logprob_diff
        );
        assert!(
            share >= required,
            "{config} {out_type}: {r:?} is below {required}"
        );
        if out_type == "f16" {
            assert!(r.max_logprob_diff <= 1e-2, "{config} f16: {r:?}");
        }
    }
}
