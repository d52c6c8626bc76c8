//! Patchify: cut resized RGB8 frames into the `pixel_values` rows the vision tower reads —
//! normalized, in merge-block-major order (the `merge_size`² patches of one block are
//! consecutive, blocks in raster order), each row laid out `[channel, time, y, x]`: a still
//! image is repeated over the `temporal_patch_size` time steps, a video's consecutive frames
//! fill them.

use anyhow::{ensure, Result};
use image::RgbImage;
use rayon::prelude::*;

use super::config::PreprocessConfig;
use super::normalize::NormalizeTable;

const CHANNELS: usize = 3;

/// Patch rows of one still image (sides must be multiples of `patch_size * merge_size`) and
/// the patch grid `[t, h, w]`.
pub fn patchify(
    img: &RgbImage,
    config: &PreprocessConfig,
    table: &NormalizeTable,
) -> Result<(Vec<f32>, [usize; 3])> {
    let frames = vec![img; config.temporal_patch_size];
    patchify_frames(&frames, config, table)
}

/// Patch rows of one temporal patch: `frames` (one per time step, all the same size) and the
/// patch grid `[1, h, w]`. Row `r` holds grid cell (row = bh*m + mh, col = bw*m + mw) where
/// `r = ((bh * gw/m + bw) * m + mh) * m + mw`.
pub fn patchify_frames(
    frames: &[&RgbImage],
    config: &PreprocessConfig,
    table: &NormalizeTable,
) -> Result<(Vec<f32>, [usize; 3])> {
    let (p, m, t) = (
        config.patch_size,
        config.merge_size,
        config.temporal_patch_size,
    );
    ensure!(
        frames.len() == t,
        "a temporal patch takes {t} frames, not {}",
        frames.len()
    );
    let (width, height) = (frames[0].width() as usize, frames[0].height() as usize);
    ensure!(
        frames
            .iter()
            .all(|f| (f.width() as usize, f.height() as usize) == (width, height)),
        "the frames of a temporal patch differ in size"
    );
    let factor = config.factor();
    ensure!(
        height % factor == 0 && width % factor == 0 && height > 0 && width > 0,
        "cannot patchify a {height}x{width} image: sides must be positive multiples of {factor}"
    );
    let (grid_h, grid_w) = (height / p, width / p);
    let blocks_per_row = grid_w / m;
    let frame_len = p * p;
    let row_len = CHANNELS * t * frame_len;
    let row_stride = width * CHANNELS;
    let mut data = vec![0.0f32; grid_h * grid_w * row_len];
    data.par_chunks_exact_mut(row_len)
        .enumerate()
        .for_each(|(r, row)| {
            let (block, within) = (r / (m * m), r % (m * m));
            let grid_row = (block / blocks_per_row) * m + within / m;
            let grid_col = (block % blocks_per_row) * m + within % m;
            for (c, channel) in row.chunks_exact_mut(t * frame_len).enumerate() {
                for (frame, patch) in frames.iter().zip(channel.chunks_exact_mut(frame_len)) {
                    let pixels: &[u8] = frame;
                    for (py, line) in patch.chunks_exact_mut(p).enumerate() {
                        let start = (grid_row * p + py) * row_stride + grid_col * p * CHANNELS;
                        let source = pixels[start..start + p * CHANNELS].chunks_exact(CHANNELS);
                        for (out, pixel) in line.iter_mut().zip(source) {
                            *out = table.get(c, pixel[c]);
                        }
                    }
                }
            }
        });
    Ok((data, [1, grid_h, grid_w]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Identity-like normalization so values can be read back as the original samples.
    fn raw_table() -> NormalizeTable {
        NormalizeTable::new(&PreprocessConfig {
            image_mean: [0.0; 3],
            image_std: [1.0; 3],
            rescale_factor: 1.0,
            ..PreprocessConfig::default()
        })
    }

    /// A pixel that encodes its own position (sides below 256): R = x, G = y, B = x + y.
    fn coordinate_image(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([x as u8, y as u8, (x + y) as u8])
        })
    }

    #[test]
    fn rows_follow_the_spec_index_formula() {
        let config = PreprocessConfig::default();
        let (p, m, t) = (16, 2, 2);
        let img = coordinate_image(96, 64); // grid 4 x 6, blocks 2 x 3
        let (data, grid) = patchify(&img, &config, &raw_table()).unwrap();
        assert_eq!(grid, [1, 4, 6]);
        let row_len = 3 * t * p * p;
        assert_eq!(data.len(), 24 * row_len);
        let (gh, gw) = (4, 6);
        for bh in 0..gh / m {
            for bw in 0..gw / m {
                for mh in 0..m {
                    for mw in 0..m {
                        let r = ((bh * (gw / m) + bw) * m + mh) * m + mw;
                        let (row, col) = (bh * m + mh, bw * m + mw);
                        for c in 0..3 {
                            for tt in 0..t {
                                for py in 0..p {
                                    for px in 0..p {
                                        let idx = c * t * p * p + tt * p * p + py * p + px;
                                        let pixel = img.get_pixel(
                                            (col * p + px) as u32,
                                            (row * p + py) as u32,
                                        );
                                        assert_eq!(
                                            data[r * row_len + idx],
                                            f32::from(pixel.0[c]),
                                            "r={r} c={c} t={tt} y={py} x={px}"
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn first_rows_are_one_merge_block_not_one_raster_line() {
        let config = PreprocessConfig::default();
        let img = coordinate_image(128, 64); // grid 4 x 8
        let (data, _) = patchify(&img, &config, &raw_table()).unwrap();
        // Channel G starts after the T*p*p values of channel R.
        let (row_len, green) = (1536, 2 * 16 * 16);
        // Top-left sample (R = x, G = y) of rows 0..4: (0,0), (16,0), (0,16), (16,16).
        let corner = |r: usize| (data[r * row_len], data[r * row_len + green]);
        assert_eq!(corner(0), (0.0, 0.0));
        assert_eq!(corner(1), (16.0, 0.0));
        assert_eq!(corner(2), (0.0, 16.0));
        assert_eq!(corner(3), (16.0, 16.0));
        // The fifth row starts the next block to the right.
        assert_eq!(corner(4), (32.0, 0.0));
    }

    #[test]
    fn a_video_patch_holds_each_frame_in_its_own_time_step() {
        let config = PreprocessConfig::default();
        let first = coordinate_image(64, 32);
        let second = RgbImage::from_fn(64, 32, |x, y| image::Rgb([200, x as u8, y as u8]));
        let (data, grid) = patchify_frames(&[&first, &second], &config, &raw_table()).unwrap();
        assert_eq!(grid, [1, 2, 4]);
        // Row 1 is cell (0, 1): x 16..32. Time step 0 of red is frame one's R = x, time
        // step 1 of red is frame two's R = 200; green's step 1 is frame two's G = x.
        let (row, plane) = (&data[1536..2 * 1536], 256);
        assert_eq!(row[0], 16.0);
        assert_eq!(row[plane], 200.0);
        assert_eq!(row[3 * plane + 1], 17.0);
        let still = patchify(&first, &config, &raw_table()).unwrap();
        let doubled = patchify_frames(&[&first, &first], &config, &raw_table()).unwrap();
        assert_eq!(still, doubled);
        let err = patchify_frames(&[&first], &config, &raw_table()).unwrap_err();
        assert!(err.to_string().contains("takes 2 frames"), "{err}");
    }

    #[test]
    fn sides_not_multiple_of_the_factor_are_rejected() {
        let img = coordinate_image(48, 64);
        let err = patchify(&img, &PreprocessConfig::default(), &raw_table()).unwrap_err();
        assert!(err.to_string().contains("multiples of 32"), "{err}");
    }
}
