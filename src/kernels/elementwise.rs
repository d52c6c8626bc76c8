//! Element-wise vector helpers shared by the model layers.

/// `x += delta`, element by element (a residual connection).
pub fn add_in_place(x: &mut [f32], delta: &[f32]) {
    debug_assert_eq!(x.len(), delta.len());
    for (a, b) in x.iter_mut().zip(delta) {
        *a += b;
    }
}
