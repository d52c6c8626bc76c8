//! Deterministic test inputs shared by the kernel unit tests.

/// `n` values spread over [-1, 1], a different sequence for each `seed`.
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Panics unless `got` and `want` hold the same f32 values bit for bit; `what` names the case.
pub fn assert_same_bits(got: &[f32], want: &[f32], what: &str) {
    let same = got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| g.to_bits() == w.to_bits());
    assert!(same, "{what}: {got:?} != {want:?}");
}
