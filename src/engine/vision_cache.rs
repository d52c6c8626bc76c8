//! Bounded cache of vision-encoder outputs keyed by image content, shared by every
//! session: a follow-up question about an image already seen does not run the vision
//! encoder again. Least recently used entries are evicted beyond the byte budget.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::model::VisionOutput;

pub struct VisionCache {
    budget_bytes: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<u64, (Arc<VisionOutput>, u64)>,
    bytes: usize,
    clock: u64,
}

fn size_of(output: &VisionOutput) -> usize {
    (output.embeddings.len() + output.deepstack.iter().map(Vec::len).sum::<usize>())
        * std::mem::size_of::<f32>()
}

impl VisionCache {
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            budget_bytes,
            inner: Mutex::new(Entries::default()),
        }
    }

    pub fn get(&self, key: u64) -> Option<Arc<VisionOutput>> {
        let mut entries = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        entries.clock += 1;
        let now = entries.clock;
        entries.map.get_mut(&key).map(|(output, used)| {
            *used = now;
            output.clone()
        })
    }

    pub fn insert(&self, key: u64, output: Arc<VisionOutput>) {
        let size = size_of(&output);
        if size > self.budget_bytes {
            return;
        }
        let mut entries = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        entries.clock += 1;
        let now = entries.clock;
        if let Some((old, _)) = entries.map.insert(key, (output, now)) {
            entries.bytes -= size_of(&old);
        }
        entries.bytes += size;
        while entries.bytes > self.budget_bytes {
            let Some((&oldest, _)) = entries.map.iter().min_by_key(|(_, (_, used))| *used) else {
                break;
            };
            if let Some((evicted, _)) = entries.map.remove(&oldest) {
                entries.bytes -= size_of(&evicted);
            }
        }
    }

    /// Drops every entry (benchmarks use it to time the encoder on every repetition).
    pub fn clear(&self) {
        let mut entries = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        entries.map.clear();
        entries.bytes = 0;
    }

    /// Bytes currently held.
    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(values: usize) -> Arc<VisionOutput> {
        Arc::new(VisionOutput {
            embeddings: vec![0.0; values],
            deepstack: Vec::new(),
            tokens: 1,
        })
    }

    #[test]
    fn least_recently_used_entry_is_evicted_past_the_budget() {
        let cache = VisionCache::new(3 * 40);
        for key in 0..3 {
            cache.insert(key, output(10));
        }
        assert!(cache.get(0).is_some());
        cache.insert(3, output(10));
        assert!(cache.get(1).is_none(), "key 1 was least recently used");
        assert!(cache.get(0).is_some() && cache.get(3).is_some());
        assert_eq!(cache.bytes(), 120);
    }

    #[test]
    fn clear_drops_every_entry() {
        let cache = VisionCache::new(1 << 20);
        cache.insert(0, output(10));
        cache.clear();
        assert!(cache.get(0).is_none());
        assert_eq!(cache.bytes(), 0);
    }
}
