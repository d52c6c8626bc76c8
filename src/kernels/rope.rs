//! Rotary position embedding in the "rotate half" (NeoX) layout: dimension `d` is
//! paired with `d + head_dim/2`. The model computes the per-position cos/sin tables.

/// In place: `x = x·cos + rotate_half(x)·sin`, where `cos`/`sin` hold `head_dim/2`
/// entries (one per rotated pair).
pub fn apply_rotary(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = x.len() / 2;
    debug_assert_eq!(cos.len(), half);
    let (lo, hi) = x.split_at_mut(half);
    for i in 0..half {
        let (a, b) = (lo[i], hi[i]);
        lo[i] = a * cos[i] - b * sin[i];
        hi[i] = b * cos[i] + a * sin[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_by_quarter_turn_swaps_pairs() {
        let mut x = [1.0, 2.0, 3.0, 4.0];
        apply_rotary(&mut x, &[0.0, 1.0], &[1.0, 0.0]);
        assert_eq!(x, [-3.0, 2.0, 1.0, 4.0]);
    }
}
