//! Per-layer key/value cache of the text decoder. Layout is head-major,
//! `[kv_head][position][head_dim]`, so decoding reads each head's keys sequentially.
//! It grows with use (capacity doubles) instead of reserving the whole context.

pub struct KvCache {
    layers: Vec<LayerCache>,
    num_kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
}

struct LayerCache {
    keys: Vec<f32>,
    values: Vec<f32>,
}

impl KvCache {
    pub fn new(num_layers: usize, num_kv_heads: usize, head_dim: usize) -> Self {
        let layers = (0..num_layers)
            .map(|_| LayerCache {
                keys: Vec::new(),
                values: Vec::new(),
            })
            .collect();
        Self {
            layers,
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
        let (d, len, old) = (self.head_dim, self.len, self.capacity);
        for layer in &mut self.layers {
            for buffer in [&mut layer.keys, &mut layer.values] {
                let mut grown = vec![0.0f32; self.num_kv_heads * new_capacity * d];
                for head in 0..self.num_kv_heads {
                    grown[head * new_capacity * d..][..len * d]
                        .copy_from_slice(&buffer[head * old * d..][..len * d]);
                }
                *buffer = grown;
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
                let src = (t * heads + head) * d;
                let dst = (head * cap + start + t) * d;
                cache.keys[dst..dst + d].copy_from_slice(&keys[src..src + d]);
                cache.values[dst..dst + d].copy_from_slice(&values[src..src + d]);
            }
        }
    }

    pub fn advance(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.len <= self.capacity);
    }

    /// Keys and values of `layer` (head-major, row stride `capacity()`).
    pub fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        let cache = &self.layers[layer];
        (&cache.keys, &cache.values)
    }

    /// Bytes held by the cache buffers.
    pub fn memory_bytes(&self) -> usize {
        self.layers.len()
            * 2
            * self.num_kv_heads
            * self.capacity
            * self.head_dim
            * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_keeps_cached_rows_per_head() {
        let mut cache = KvCache::new(1, 2, 2);
        cache.reserve(1);
        cache.write(0, 0, &[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 1);
        cache.advance(1);
        cache.reserve(40);
        let cap = cache.capacity();
        let (k, v) = cache.layer(0);
        assert_eq!(&k[0..2], &[1.0, 2.0]);
        assert_eq!(&k[cap * 2..cap * 2 + 2], &[3.0, 4.0]);
        assert_eq!(&v[cap * 2..cap * 2 + 2], &[7.0, 8.0]);
    }
}
