//! Rotary position embeddings of Qwen3-VL: the text decoder's interleaved M-RoPE with
//! 3-D (T, H, W) positions from `get_rope_index`, and the vision encoder's 2-D rotary.
//! Angles are computed in f32 exactly as transformers does (`f32(pos) * inv_freq`).

/// A 3-D M-RoPE position (temporal, height, width).
pub type Position3 = [i64; 3];

/// `1 / theta^(2j/dim)` for `j in 0..dim/2`, in f32.
fn inverse_frequencies(theta: f32, dim: usize) -> Vec<f32> {
    (0..dim / 2)
        .map(|j| 1.0 / theta.powf((2 * j) as f32 / dim as f32))
        .collect()
}

/// Per-token cos/sin of every rotary pair, `tokens × pairs` each.
pub struct RotaryTables {
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

/// Text-decoder M-RoPE: which axis drives each rotary pair, and its frequency.
#[derive(Clone, Debug)]
pub struct MRope {
    inv_freq: Vec<f32>,
    axis_of_pair: Vec<usize>,
}

impl MRope {
    pub fn new(head_dim: usize, theta: f32, section: [usize; 3]) -> Self {
        let inv_freq = inverse_frequencies(theta, head_dim);
        // Interleaved layout: pair j uses H when j%3==1 (j < 3·section[1]), W when
        // j%3==2 (j < 3·section[2]), and T otherwise.
        let axis_of_pair = (0..head_dim / 2)
            .map(|j| match j % 3 {
                1 if j < 3 * section[1] => 1,
                2 if j < 3 * section[2] => 2,
                _ => 0,
            })
            .collect();
        Self {
            inv_freq,
            axis_of_pair,
        }
    }

    /// Number of rotary pairs (head_dim / 2).
    pub fn pairs(&self) -> usize {
        self.inv_freq.len()
    }

    /// cos and sin tables, `positions.len()` rows of `pairs()` entries each.
    pub fn tables(&self, positions: &[Position3]) -> RotaryTables {
        let mut cos = Vec::with_capacity(positions.len() * self.pairs());
        let mut sin = Vec::with_capacity(positions.len() * self.pairs());
        for pos in positions {
            for (freq, &axis) in self.inv_freq.iter().zip(&self.axis_of_pair) {
                let angle = pos[axis] as f32 * freq;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        RotaryTables { cos, sin }
    }
}

/// 3-D positions of a token sequence (`get_rope_index`): text tokens advance all three
/// axes together; an image's tokens share T = s and take H = s + row, W = s + col of
/// the merged grid, and the text after it resumes at s + max(rows, cols). A video's temporal
/// patches (runs of the video pad, split by their timestamps) are placed like images.
/// `pads` are the image and video pad ids; `image_grids` gives (rows, cols) of each run's
/// merged grid, in order.
pub fn rope_positions(
    ids: &[u32],
    pads: &[u32],
    image_grids: &[(usize, usize)],
) -> anyhow::Result<Vec<Position3>> {
    let mut positions = Vec::with_capacity(ids.len());
    let mut next = 0i64;
    let mut grids = image_grids.iter();
    let mut i = 0;
    while i < ids.len() {
        if !pads.contains(&ids[i]) {
            positions.push([next; 3]);
            next += 1;
            i += 1;
            continue;
        }
        let &(rows, cols) = grids
            .next()
            .ok_or_else(|| anyhow::anyhow!("more image token runs than images in the prompt"))?;
        let pad = ids[i];
        let run = ids[i..].iter().take_while(|&&t| t == pad).count();
        anyhow::ensure!(
            run == rows * cols,
            "an image run has {run} tokens, its {rows}x{cols} grid needs {}",
            rows * cols
        );
        for r in 0..rows as i64 {
            for c in 0..cols as i64 {
                positions.push([next, next + r, next + c]);
            }
        }
        next += rows.max(cols) as i64;
        i += run;
    }
    anyhow::ensure!(
        grids.next().is_none(),
        "fewer image token runs than images in the prompt"
    );
    Ok(positions)
}

/// Position of the first token after a sequence whose positions are `positions`.
pub fn next_position(positions: &[Position3]) -> i64 {
    positions
        .iter()
        .flat_map(|p| p.iter())
        .max()
        .map_or(0, |m| m + 1)
}

/// (row, col) on the patch grid of every patch, in the merge-block-major order of
/// `pixel_values`: the 2×2 patches of each merge block are consecutive.
pub fn patch_coordinates(grid_h: usize, grid_w: usize, merge: usize) -> Vec<(usize, usize)> {
    let mut coords = Vec::with_capacity(grid_h * grid_w);
    for block_row in 0..grid_h / merge {
        for block_col in 0..grid_w / merge {
            for in_row in 0..merge {
                for in_col in 0..merge {
                    coords.push((block_row * merge + in_row, block_col * merge + in_col));
                }
            }
        }
    }
    coords
}

/// Vision 2-D rotary tables: for head_dim `d`, pairs `0..d/4` rotate by row·f and
/// pairs `d/4..d/2` by col·f, with `f = 1/theta^(2j/(d/2))`.
pub fn vision_rope_tables(coords: &[(usize, usize)], head_dim: usize, theta: f32) -> RotaryTables {
    let inv_freq = inverse_frequencies(theta, head_dim / 2);
    let mut cos = Vec::with_capacity(coords.len() * head_dim / 2);
    let mut sin = Vec::with_capacity(coords.len() * head_dim / 2);
    for &(row, col) in coords {
        for axis_value in [row, col] {
            for freq in &inv_freq {
                let angle = axis_value as f32 * freq;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
    }
    RotaryTables { cos, sin }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_sections_assign_axes_like_transformers() {
        let rope = MRope::new(128, 5e6, [24, 20, 20]);
        assert_eq!(&rope.axis_of_pair[..7], &[0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(rope.axis_of_pair.iter().filter(|&&a| a == 1).count(), 20);
        assert_eq!(rope.axis_of_pair.iter().filter(|&&a| a == 2).count(), 20);
        assert_eq!(&rope.axis_of_pair[57..], &[0, 1, 2, 0, 0, 0, 0]);
    }

    #[test]
    fn image_positions_follow_the_spec_worked_example() {
        // SPEC §5.2: 3 text tokens, vision_start, a 4x6 merged image, then 9 text tokens.
        let pad = 151655;
        let mut ids = vec![1, 2, 3, 151652];
        ids.extend(std::iter::repeat_n(pad, 24));
        ids.extend([151653, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let pos = rope_positions(&ids, &[pad], &[(4, 6)]).unwrap();
        assert_eq!(pos[3], [3, 3, 3]);
        assert_eq!(pos[4], [4, 4, 4]);
        assert_eq!(pos[4 + 6 + 2], [4, 5, 6]);
        assert_eq!(pos[27], [4, 7, 9]);
        assert_eq!(pos[28], [10, 10, 10]);
        assert_eq!(next_position(&pos), 19 + 1);
    }

    #[test]
    fn video_patches_are_placed_like_images_after_their_timestamps() {
        // An image pad run (1x2) right before a video pad run (1x2) split by text: each run
        // starts a group of its own.
        let (image, video) = (151655, 151656);
        let ids = [1, image, image, 2, video, video, 3, video, video, 4];
        let pos = rope_positions(&ids, &[image, video], &[(1, 2), (1, 2), (1, 2)]).unwrap();
        assert_eq!(pos[1..3], [[1, 1, 1], [1, 1, 2]]);
        assert_eq!(pos[3], [3, 3, 3]);
        assert_eq!(pos[4..6], [[4, 4, 4], [4, 4, 5]]);
        assert_eq!(pos[6], [6, 6, 6]);
        assert_eq!(pos[9], [9, 9, 9]);
    }

    #[test]
    fn image_run_of_the_wrong_length_is_an_error() {
        let err = rope_positions(&[7, 7, 7], &[7], &[(2, 2)]).unwrap_err();
        assert!(err.to_string().contains("3 tokens"));
    }

    #[test]
    fn patch_coordinates_are_merge_block_major() {
        let c = patch_coordinates(4, 4, 2);
        assert_eq!(&c[..6], &[(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3)]);
        assert_eq!(c[15], (3, 3));
    }
}
