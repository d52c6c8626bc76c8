//! Anonymous memory for weights converted or repacked at load, placed for transparent huge
//! pages: the buffer starts on a 2 MiB boundary, so every whole 2 MiB of it can be one huge
//! page (one TLB entry, and a hardware prefetcher that is not stopped every 4 KiB), and the
//! tail below 2 MiB stays in small pages, so no huge page is half unused. A plain mapping
//! starts wherever the kernel puts it, and only the 2 MiB ranges that fall wholly inside it
//! become huge pages (the 2B q4_k's repacked layers: 58 % of 785 MiB).
use anyhow::Result;

/// The huge page size the placement aims at (x86-64 and arm64 with 4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

pub struct AnonBuffer {
    map: memmap2::MmapMut,
    start: usize,
    len: usize,
}

impl AnonBuffer {
    /// `len` zeroed bytes. Buffers of at least one huge page reserve 2 MiB of address space
    /// more than they use (never touched, so never resident).
    pub fn new(len: usize) -> Result<Self> {
        if len < HUGE_PAGE {
            let map = memmap2::MmapMut::map_anon(len.max(1))?;
            return Ok(Self { map, start: 0, len });
        }
        let map = memmap2::MmapMut::map_anon(len + HUGE_PAGE)?;
        let base = map.as_ptr() as usize;
        let start = base.next_multiple_of(HUGE_PAGE) - base;
        #[cfg(target_os = "linux")]
        {
            use memmap2::Advice;
            let huge = len / HUGE_PAGE * HUGE_PAGE;
            // Only hints: without them the buffer works the same, in small pages.
            let _ = map.advise_range(Advice::HugePage, start, huge);
            let _ = map.advise_range(Advice::NoHugePage, start + huge, map.len() - start - huge);
        }
        Ok(Self { map, start, len })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map[self.start..self.start + self.len]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_of_a_huge_page_or_more_start_on_a_huge_page_boundary() {
        for len in [0, 100, HUGE_PAGE - 1, HUGE_PAGE, 3 * HUGE_PAGE + 12345] {
            let mut buffer = AnonBuffer::new(len).unwrap();
            assert_eq!(buffer.bytes().len(), len);
            assert!(buffer.bytes().iter().all(|&b| b == 0));
            buffer.bytes_mut().fill(7);
            if len >= HUGE_PAGE {
                assert_eq!(buffer.bytes().as_ptr() as usize % HUGE_PAGE, 0, "{len}");
            }
        }
    }
}
