//! Per-layer key/value cache of the text decoder. Layout is head-major,
//! `[kv_head][position][head_dim]`, so decoding reads each head's keys sequentially.
//! It grows with use (capacity doubles) instead of reserving the whole context. Rows are
//! f32, or f16 beside block-quantized weights (`KvFormat`): half the memory and half the
//! bytes each decode step reads, for a rounding far below the weights' own.
use half::f16;

use anyhow::{bail, Result};

use crate::kernels::attention::{KeysValues, Precision};
use crate::kernels::f16_convert::narrow;

/// Element type of the cached keys and values, chosen once when the model loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvFormat {
    F32,
    F16,
}

impl KvFormat {
    /// The cache beside weights whose attention runs at `precision`: f32 beside the exact
    /// f32 / f16 weights, f16 beside block-quantized ones (as llama.cpp's default cache).
    /// `GLIMPSE_KV_CACHE=f32|f16` overrides it.
    pub fn beside(precision: Precision) -> Result<Self> {
        match std::env::var("GLIMPSE_KV_CACHE").ok().as_deref() {
            None | Some("") => Ok(match precision {
                Precision::F32 => Self::F32,
                Precision::Bf16 => Self::F16,
            }),
            Some("f32") => Ok(Self::F32),
            Some("f16") => Ok(Self::F16),
            Some(other) => bail!("GLIMPSE_KV_CACHE={other:?}: expected \"f32\" or \"f16\""),
        }
    }
}

pub struct KvCache {
    layers: Vec<LayerCache>,
    format: KvFormat,
    num_kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
}

/// One layer's keys and values, each `[kv_head][capacity][head_dim]`.
enum LayerCache {
    F32 { keys: Vec<f32>, values: Vec<f32> },
    F16 { keys: Vec<f16>, values: Vec<f16> },
}

/// `buffer` (`heads` runs of `old` rows of `d`, the first `len` rows live) moved to a
/// stride of `new` rows.
fn regrow<E: Copy + Default>(
    buffer: &mut Vec<E>,
    heads: usize,
    d: usize,
    (len, old, new): (usize, usize, usize),
) {
    let mut grown = vec![E::default(); heads * new * d];
    for head in 0..heads {
        grown[head * new * d..][..len * d].copy_from_slice(&buffer[head * old * d..][..len * d]);
    }
    *buffer = grown;
}

impl KvCache {
    pub fn new(num_layers: usize, num_kv_heads: usize, head_dim: usize, format: KvFormat) -> Self {
        let layers = (0..num_layers)
            .map(|_| match format {
                KvFormat::F32 => LayerCache::F32 {
                    keys: Vec::new(),
                    values: Vec::new(),
                },
                KvFormat::F16 => LayerCache::F16 {
                    keys: Vec::new(),
                    values: Vec::new(),
                },
            })
            .collect();
        Self {
            layers,
            format,
            num_kv_heads,
            head_dim,
            capacity: 0,
            len: 0,
        }
    }

    /// Positions currently cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Row stride of one head, in positions.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every position from `len` on (keeps a reusable prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Makes room for `extra` more positions, moving each head's rows to the new stride.
    pub fn reserve(&mut self, extra: usize) {
        let needed = self.len + extra;
        if needed <= self.capacity {
            return;
        }
        let new_capacity = needed.max(self.capacity * 2).max(16);
        let (d, heads) = (self.head_dim, self.num_kv_heads);
        let rows = (self.len, self.capacity, new_capacity);
        for layer in &mut self.layers {
            match layer {
                LayerCache::F32 { keys, values } => {
                    regrow(keys, heads, d, rows);
                    regrow(values, heads, d, rows);
                }
                LayerCache::F16 { keys, values } => {
                    regrow(keys, heads, d, rows);
                    regrow(values, heads, d, rows);
                }
            }
        }
        self.capacity = new_capacity;
    }

    /// Stores `keys`/`values` (`n × num_kv_heads × head_dim`, token-major) of layer
    /// `layer` at positions `len + offset..len + offset + n`. Call `advance` with the
    /// pass's whole count after the last layer.
    pub fn write(&mut self, layer: usize, offset: usize, keys: &[f32], values: &[f32], n: usize) {
        assert!(
            self.len + offset + n <= self.capacity,
            "KvCache::write without reserve"
        );
        let (d, heads, cap) = (self.head_dim, self.num_kv_heads, self.capacity);
        let start = self.len + offset;
        let cache = &mut self.layers[layer];
        for t in 0..n {
            for head in 0..heads {
                let (src, dst) = ((t * heads + head) * d, (head * cap + start + t) * d);
                let (src, dst) = (src..src + d, dst..dst + d);
                match cache {
                    LayerCache::F32 { keys: k, values: v } => {
                        k[dst.clone()].copy_from_slice(&keys[src.clone()]);
                        v[dst].copy_from_slice(&values[src]);
                    }
                    LayerCache::F16 { keys: k, values: v } => {
                        narrow(&keys[src.clone()], &mut k[dst.clone()]);
                        narrow(&values[src], &mut v[dst]);
                    }
                }
            }
        }
    }

    pub fn advance(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.len <= self.capacity);
    }

    /// Keys and values of `layer` (head-major, row stride `capacity()`).
    pub fn layer(&self, layer: usize) -> KeysValues<'_> {
        match &self.layers[layer] {
            LayerCache::F32 { keys, values } => KeysValues::F32(keys, values),
            LayerCache::F16 { keys, values } => KeysValues::F16(keys, values),
        }
    }

    /// Element type of the cached rows.
    pub fn format(&self) -> KvFormat {
        self.format
    }

    /// Bytes held by the cache buffers.
    pub fn memory_bytes(&self) -> usize {
        self.layers.len()
            * 2
            * self.num_kv_heads
            * self.capacity
            * self.head_dim
            * match self.format {
                KvFormat::F32 => size_of::<f32>(),
                KvFormat::F16 => size_of::<f16>(),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layer 0's keys and values widened to f32.
    fn layer_values(cache: &KvCache) -> (Vec<f32>, Vec<f32>) {
        match cache.layer(0) {
            KeysValues::F32(k, v) => (k.to_vec(), v.to_vec()),
            KeysValues::F16(k, v) => (
                k.iter().map(|x| x.to_f32()).collect(),
                v.iter().map(|x| x.to_f32()).collect(),
            ),
        }
    }

    #[test]
    fn growing_keeps_cached_rows_per_head() {
        for format in [KvFormat::F32, KvFormat::F16] {
            let mut cache = KvCache::new(1, 2, 2, format);
            cache.reserve(1);
            cache.write(0, 0, &[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 1);
            cache.advance(1);
            cache.reserve(40);
            let cap = cache.capacity();
            let (k, v) = layer_values(&cache);
            assert_eq!(&k[0..2], &[1.0, 2.0]);
            assert_eq!(&k[cap * 2..cap * 2 + 2], &[3.0, 4.0]);
            assert_eq!(&v[cap * 2..cap * 2 + 2], &[7.0, 8.0]);
        }
    }

    #[test]
    fn f16_rows_are_the_rounded_values_in_half_the_bytes() {
        let (mut wide, mut narrow) = (
            KvCache::new(1, 1, 4, KvFormat::F32),
            KvCache::new(1, 1, 4, KvFormat::F16),
        );
        let keys = [0.1f32, -1.7, 3.3e-3, 1000.5];
        for cache in [&mut wide, &mut narrow] {
            cache.reserve(1);
            cache.write(0, 0, &keys, &keys, 1);
            cache.advance(1);
        }
        let (k, _) = layer_values(&narrow);
        let rounded: Vec<f32> = keys.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
        assert_eq!(&k[..4], &rounded[..]);
        assert_eq!(narrow.memory_bytes() * 2, wide.memory_bytes());
        assert_eq!(narrow.format(), KvFormat::F16);
    }
}
