//! A bounds-checked little-endian cursor over the bytes of a GGUF header. Every read checks
//! the remaining length first, and every count is checked against what the remaining bytes
//! could possibly hold before anything is allocated, so corrupt files fail cleanly.
use crate::error::{GgufError, Result};

/// No GGUF file is anywhere near this large (256 TiB); counts implying more are corrupt.
const MAX_PLAUSIBLE_BYTES: u64 = 1 << 48;

pub(crate) struct ByteCursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> ByteCursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> ByteCursor<'a> {
        ByteCursor { bytes, position: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let taken = self
            .position
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.position..end))
            .ok_or(GgufError::Truncated {
                needed: n,
                offset: self.position,
                file_len: self.bytes.len(),
            })?;
        self.position += n;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i8(&mut self) -> Result<i8> {
        Ok(i8::from_le_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    pub(crate) fn bool(&mut self) -> Result<bool> {
        let at = self.position;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(GgufError::InvalidBool { value, offset: at }),
        }
    }

    /// A u64 length-prefixed UTF-8 string.
    pub(crate) fn string(&mut self) -> Result<String> {
        let at = self.position;
        let len = self.count("string length", 1)?;
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_string()),
            Err(_) => Err(GgufError::InvalidUtf8 { offset: at }),
        }
    }

    /// A u64 element count of `what`, checked by `check_count`.
    pub(crate) fn count(&mut self, what: &'static str, min_element_bytes: usize) -> Result<usize> {
        let count = self.u64()?;
        self.check_count(what, count, min_element_bytes)
    }

    /// `count` as a usize. A count whose elements (at least `min_element_bytes` each) would
    /// need more than `MAX_PLAUSIBLE_BYTES` is absurd; one that merely overruns the rest of
    /// the file means the file is truncated.
    pub(crate) fn check_count(
        &self,
        what: &'static str,
        count: u64,
        min_element_bytes: usize,
    ) -> Result<usize> {
        let needed = count
            .checked_mul(min_element_bytes as u64)
            .filter(|&needed| needed <= MAX_PLAUSIBLE_BYTES);
        match needed {
            None => Err(GgufError::AbsurdCount { what, count }),
            Some(needed) if needed > self.remaining() as u64 => Err(GgufError::TruncatedCount {
                what,
                count,
                needed,
                offset: self.position,
                file_len: self.bytes.len(),
            }),
            Some(_) => Ok(count as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_fail_without_moving() {
        let mut cursor = ByteCursor::new(&[1, 0, 0]);
        assert!(cursor.u32().is_err());
        assert_eq!(cursor.position(), 0);
        assert_eq!(cursor.u16().unwrap(), 1);
    }

    #[test]
    fn implausibly_large_counts_are_absurd() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 8]);
        let err = ByteCursor::new(&bytes)
            .count("tensor count", 1)
            .unwrap_err();
        assert_eq!(err.to_string(), format!("absurd tensor count {}", u64::MAX));
        let mut large = (1u64 << 46).to_le_bytes().to_vec();
        large.extend_from_slice(&[0; 8]);
        let err = ByteCursor::new(&large)
            .count("array length", 8)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("absurd array length {}", 1u64 << 46)
        );
    }

    #[test]
    fn counts_beyond_the_remaining_bytes_mean_truncation() {
        let mut small = 2u64.to_le_bytes().to_vec();
        small.extend_from_slice(&[0; 8]);
        assert_eq!(ByteCursor::new(&small).count("x", 4).unwrap(), 2);
        let err = ByteCursor::new(&small)
            .count("x", 5)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "truncated GGUF header: x 2 needs at least 10 bytes at offset 8 but the file has 16"
        );
    }

    #[test]
    fn strings_must_be_utf8_and_bools_zero_or_one() {
        let mut bytes = 2u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        assert!(ByteCursor::new(&bytes).string().is_err());
        assert!(ByteCursor::new(&[2]).bool().is_err());
        assert!(ByteCursor::new(&[1]).bool().unwrap());
    }
}
