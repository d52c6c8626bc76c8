//! Kernel bench: `x · Wᵀ` for f32, f16, q8_0, q4_K and q6_K weights at Qwen3-VL-2B shapes, for one
//! token (decode: memory-bound, reported as weight GB/s), 4 and 16 tokens (follow-up turns,
//! prompt chunks) and 128 / 512 tokens (prefill: compute-bound, GFLOP/s), and text-decoder
//! attention. `cargo bench --bench kernels`; `BENCH_FILTER=q4K` keeps one weight kind,
//! `BENCH_FROM_MEMORY=1` swaps the shapes for one matrix no L3 holds, `BENCH_TOKENS=1,20`
//! sets the token counts (default 1, 4, 16, 128, 512). On AMX hosts the
//! interleaved rows (`q8x16`, `q4Kx16`) run 16 tokens and more on AMX-INT8 tiles;
//! `GLIMPSE_AMX_INT8=off` gives their VNNI kernels for comparison.
use std::time::{Duration, Instant};

use glimpse::kernels::attention::{attention, AttentionShape, KeysValues, Precision};
use glimpse::kernels::WeightMatrix;
use glimpse_convert::GgmlType;
use half::f16;

/// Median seconds per call over calls made for about `budget`, called from a pool thread
/// as the model's step calls its kernels (called from outside the pool, each parallel
/// product would also time the wake-up of a sleeping caller: ~20 µs on a 2-core VM).
fn time(budget: Duration, f: impl FnMut() + Send) -> f64 {
    rayon::scope(|_| time_here(budget, f))
}

fn time_here(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget || samples.len() < 3 {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let threads = glimpse::engine::threads::init_thread_pool(None).unwrap_or(1);
    println!(
        "simd path: {}, threads: {threads}",
        glimpse::kernels::simd::simd_path().name()
    );
    println!(
        "q8_0/q4_K: {}",
        glimpse::kernels::weight::quantized_weights_path()
    );
    let budget = Duration::from_millis(1500);
    let token_counts: Vec<usize> = match std::env::var("BENCH_TOKENS") {
        Ok(list) => list
            .split(',')
            .map(|m| {
                m.trim()
                    .parse()
                    .expect("BENCH_TOKENS: comma-separated counts")
            })
            .collect(),
        Err(_) => vec![1, 4, 16, 128, 512],
    };
    // BENCH_FROM_MEMORY=1: one matrix no L3 holds (100 MB at q8_0), the decode case where
    // every weight comes from memory; the model's own shapes fit in a large L3.
    let from_memory = std::env::var_os("BENCH_FROM_MEMORY").is_some();
    for (name, rows, cols) in [
        ("attn_q 2048x2048", 2048, 2048),
        ("ffn_up 6144x2048", 6144, 2048),
        ("vis_fc1 4096x1024", 4096, 1024),
        ("vis_fc2 1024x4096", 1024, 4096),
    ]
    .into_iter()
    .filter(|_| !from_memory)
    .chain(from_memory.then_some(("memory 49152x2048", 49152, 2048)))
    {
        let w32: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 2_654_435_761usize) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let w16: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
        let quantized = |t: GgmlType| {
            let mut out = Vec::new();
            glimpse_convert::encode_into(t, &w32, &mut out).expect("quantize");
            out
        };
        let (q8, q4k, q6k) = (
            quantized(GgmlType::Q8_0),
            quantized(GgmlType::Q4_K),
            quantized(GgmlType::Q6_K),
        );
        let weights = [
            (
                "f32",
                WeightMatrix::F32 {
                    data: &w32,
                    rows,
                    cols,
                },
                rows * cols * 4,
            ),
            (
                "f16",
                WeightMatrix::F16 {
                    data: &w16,
                    rows,
                    cols,
                },
                rows * cols * 2,
            ),
            (
                "q8_0",
                WeightMatrix::Q8_0 {
                    data: &q8,
                    rows,
                    cols,
                },
                q8.len(),
            ),
            (
                "q4_K",
                WeightMatrix::Q4K {
                    data: &q4k,
                    rows,
                    cols,
                },
                q4k.len(),
            ),
            // The output projection's format in the 4-bit profiles (decode products only).
            (
                "q6_K",
                WeightMatrix::Q6K {
                    data: &q6k,
                    rows,
                    cols,
                },
                q6k.len(),
            ),
        ];
        // The interleaved repacking of the quantized matrices (the layout the model uses
        // on CPUs with AVX-512 VNNI or AVX2).
        let (mut q8x16, mut q4kx16) = (Vec::new(), Vec::new());
        let mut weights = weights.to_vec();
        for (kind, buffer) in [("q8_0", &mut q8x16), ("q4_K", &mut q4kx16)] {
            let (_, w, _) = weights[weights.iter().position(|e| e.0 == kind).expect("kind")];
            let bytes = w.interleaved_bytes().expect("quantized");
            buffer.resize(bytes, 0);
            let label = if kind == "q8_0" { "q8x16" } else { "q4Kx16" };
            weights.push((label, w.interleave_into(buffer), bytes));
        }
        let filter = std::env::var("BENCH_FILTER").unwrap_or_default();
        for (kind, w, weight_bytes) in weights {
            if !kind.contains(filter.as_str()) {
                continue;
            }
            for &m in &token_counts {
                let x: Vec<f32> = (0..m * cols).map(|i| (i % 7) as f32 * 0.1).collect();
                let mut out = vec![0.0; m * rows];
                let secs = time(budget, || w.matmul(&x, m, &mut out));
                let gflops = 2.0 * (m * rows * cols) as f64 / secs / 1e9;
                let gbps = weight_bytes as f64 / secs / 1e9;
                println!("{name:18} {kind:6} m={m:<4} {:9.3} ms  {gflops:7.1} GFLOP/s  {gbps:6.1} GB/s of weights", secs * 1e3);
            }
        }
    }
    for (label, heads, kv_heads, d, queries, keys, causal) in [
        (
            "text decode, 1 query / 1024 keys",
            16,
            8,
            128,
            1,
            1024,
            true,
        ),
        ("text prefill, 512 queries", 16, 8, 128, 512, 512, true),
        ("vision, 784 patches", 16, 16, 64, 784, 784, false),
    ] {
        let shape = AttentionShape {
            n_heads: heads,
            n_kv_heads: kv_heads,
            head_dim: d,
            n_queries: queries,
            n_keys: keys,
            kv_stride: keys,
        };
        let q = vec![0.01f32; heads * queries * d];
        let kv = vec![0.02f32; kv_heads * keys * d];
        let kv16 = vec![f16::from_f32(0.02); kv_heads * keys * d];
        let causal = causal.then_some(keys - queries);
        // f32 keys / values (the f32 profiles), and the f16 cache of the quantized ones.
        for (cache, kv) in [
            ("f32 kv", KeysValues::F32(&kv, &kv)),
            ("f16 kv", KeysValues::F16(&kv16, &kv16)),
        ] {
            for precision in [Precision::F32, Precision::Bf16] {
                let secs = time(budget, || {
                    std::hint::black_box(attention(&q, kv, shape, 0.088, causal, precision));
                });
                println!(
                    "attention {label:34} {cache} {precision:?}: {:9.3} ms",
                    secs * 1e3
                );
            }
        }
    }
}
