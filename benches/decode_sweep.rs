//! Decode sweep: one token through the weight matrices of the 2B's 28 decoder layers
//! (q4_K / q8_0, interleaved as the model holds them), product after product as decode
//! runs them, against the same bytes in one product per layer and in one product for
//! the whole stack — the in-model bandwidth of the weight kernels without the rest of
//! the model, and what per-product start-up costs. `cargo bench --bench decode_sweep`
//! (`GLIMPSE_THREADS=N` for another thread count).
use std::time::Instant;

use glimpse::kernels::WeightMatrix;
use glimpse_convert::GgmlType;

const HIDDEN: usize = 2048;
const FFN: usize = 6144;
const LAYERS: usize = 28;

fn quantized(kind: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 2_654_435_761usize) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let mut out = Vec::new();
    glimpse_convert::encode_into(kind, &w, &mut out).expect("quantize");
    out
}

fn matrix(kind: GgmlType, data: &[u8], rows: usize, cols: usize) -> WeightMatrix<'_> {
    match kind {
        GgmlType::Q8_0 => WeightMatrix::Q8_0 { data, rows, cols },
        _ => WeightMatrix::Q4K { data, rows, cols },
    }
}

/// The interleaved copy of `file` (`rows × cols` of `kind`).
fn interleaved(kind: GgmlType, file: &[u8], rows: usize, cols: usize) -> (Vec<u8>, usize) {
    let w = matrix(kind, file, rows, cols);
    let bytes = w.interleaved_bytes().expect("quantized");
    let mut buffer = vec![0u8; bytes];
    w.interleave_into(&mut buffer);
    (buffer, bytes)
}

/// A way of running the sweep: name, weight bytes read, and the run.
type Variant<'a> = (&'static str, usize, Box<dyn FnMut(&mut [f32]) + Send + 'a>);

/// The interleaved matrix over `data`.
fn interleaved_matrix(kind: GgmlType, data: &[u8], rows: usize, cols: usize) -> WeightMatrix<'_> {
    match kind {
        GgmlType::Q8_0 => WeightMatrix::Q8_0x16 { data, rows, cols },
        _ => WeightMatrix::Q4Kx16 { data, rows, cols },
    }
}

fn main() {
    // GLIMPSE_THREADS=N as for the CLI (default: the physical cores).
    let requested = std::env::var("GLIMPSE_THREADS")
        .ok()
        .and_then(|v| v.parse().ok());
    let threads = glimpse::engine::threads::init_thread_pool(requested).unwrap_or(1);
    println!(
        "simd path: {}, threads: {threads}, q8_0/q4_K: {}",
        glimpse::kernels::simd::simd_path().name(),
        glimpse::kernels::weight::quantized_weights_path()
    );
    for kind in [GgmlType::Q4_K, GgmlType::Q8_0] {
        // (rows, cols) of a layer's products in decode order.
        let shapes = [
            (HIDDEN, HIDDEN),
            (HIDDEN / 2, HIDDEN),
            (HIDDEN / 2, HIDDEN),
            (HIDDEN, HIDDEN),
            (FFN, HIDDEN),
            (FFN, HIDDEN),
            (HIDDEN, FFN),
        ];
        let one_layer: Vec<(Vec<u8>, usize, usize)> = shapes
            .iter()
            .map(|&(r, c)| (quantized(kind, r, c), r, c))
            .collect();
        // Every layer its own copy, so a token reads them all from memory.
        let layers: Vec<Vec<(Vec<u8>, usize, usize)>> = (0..LAYERS)
            .map(|_| {
                one_layer
                    .iter()
                    .map(|(f, r, c)| (interleaved(kind, f, *r, *c).0, *r, *c))
                    .collect()
            })
            .collect();
        let total: usize = layers.iter().flatten().map(|(b, _, _)| b.len()).sum();
        // The same bytes as two products per layer (the 2048-wide rows stacked, and the
        // down product), and as one product over the whole stack's 2048-wide rows.
        let wide_rows: usize = shapes.iter().filter(|s| s.1 == HIDDEN).map(|s| s.0).sum();
        let wide_file = quantized(kind, wide_rows, HIDDEN);
        let stacked: Vec<(Vec<u8>, Vec<u8>)> = (0..LAYERS)
            .map(|l| {
                (
                    interleaved(kind, &wide_file, wide_rows, HIDDEN).0,
                    layers[l][6].0.clone(),
                )
            })
            .collect();
        let all_rows = wide_rows * LAYERS;
        let all_file = quantized(kind, all_rows, HIDDEN);
        let (all, _) = interleaved(kind, &all_file, all_rows, HIDDEN);
        drop(all_file);
        let x_wide = vec![0.1f32; HIDDEN];
        let x_ffn = vec![0.1f32; FFN];
        let mut out = vec![0.0f32; all_rows];
        let stacked_bytes: usize = stacked.iter().map(|(a, b)| a.len() + b.len()).sum();
        let mut variants: Vec<Variant> = vec![
            (
                "7 products per layer",
                total,
                Box::new(|out: &mut [f32]| {
                    for layer in &layers {
                        for (data, rows, cols) in layer {
                            let x = if *cols == HIDDEN { &x_wide } else { &x_ffn };
                            interleaved_matrix(kind, data, *rows, *cols).matmul(
                                x,
                                1,
                                &mut out[..*rows],
                            );
                        }
                    }
                }),
            ),
            (
                "2 products per layer",
                stacked_bytes,
                Box::new(|out: &mut [f32]| {
                    for (wide, down) in &stacked {
                        interleaved_matrix(kind, wide, wide_rows, HIDDEN).matmul(
                            &x_wide,
                            1,
                            &mut out[..wide_rows],
                        );
                        interleaved_matrix(kind, down, HIDDEN, FFN).matmul(
                            &x_ffn,
                            1,
                            &mut out[..HIDDEN],
                        );
                    }
                }),
            ),
            (
                "1 product (2048-wide rows only)",
                all.len(),
                Box::new(|out: &mut [f32]| {
                    interleaved_matrix(kind, &all, all_rows, HIDDEN).matmul(&x_wide, 1, out)
                }),
            ),
        ];
        // The machine's bandwidth can move within seconds: the variants run in turn, and
        // each is reported as the median of its per-round bandwidth over the last one's.
        const ROUNDS: usize = 15;
        let mut rates = vec![Vec::new(); variants.len()];
        // On a pool thread, as the model's step runs: a product started from outside the
        // pool waits for a sleeping thread to wake (~20 µs here, per product).
        rayon::scope(|_| {
            for _ in 0..ROUNDS {
                for (i, (_, bytes, run)) in variants.iter_mut().enumerate() {
                    let t = Instant::now();
                    run(&mut out);
                    rates[i].push(*bytes as f64 / t.elapsed().as_secs_f64() / 1e9);
                }
            }
        });
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let last = rates.len() - 1;
        for (i, (name, _, _)) in variants.iter().enumerate() {
            let ratios = rates[i]
                .iter()
                .zip(&rates[last])
                .map(|(a, b)| a / b)
                .collect();
            println!(
                "{kind:?} {name:34} {:5.1} GB/s median, {:.3} of the single product (median of {ROUNDS} rounds)",
                median(rates[i].clone()),
                median(ratios)
            );
        }
    }
}
