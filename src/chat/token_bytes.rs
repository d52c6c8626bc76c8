//! Raw bytes of a single token. Byte-level BPE vocabularies (GPT-2 / Qwen) spell each
//! byte as a printable character; inverting that table gives the exact bytes a token
//! stands for, even when it is only part of a UTF-8 character (OpenAI's logprob `bytes`).

/// The GPT-2 `bytes_to_unicode` table inverted: character → byte.
fn byte_of_char(c: char) -> Option<u8> {
    let code = c as u32;
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    if code < 256 && printable(code) {
        return Some(code as u8);
    }
    // Non-printable bytes are mapped, in increasing order, to 256, 257, ...
    let index = code.checked_sub(256)?;
    (0u32..256)
        .filter(|&b| !printable(b))
        .nth(index as usize)
        .map(|b| b as u8)
}

/// Bytes of a vocabulary entry in byte-level form; entries that are not (added special
/// tokens written as plain text) give their UTF-8 bytes.
pub fn vocabulary_entry_bytes(entry: &str) -> Vec<u8> {
    entry
        .chars()
        .map(byte_of_char)
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_else(|| entry.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_spellings_map_back_to_raw_bytes() {
        assert_eq!(vocabulary_entry_bytes("Ġhello"), b" hello");
        assert_eq!(vocabulary_entry_bytes("Ċ"), b"\n");
        // "æĹ" is the first two bytes of "日" (E6 97 A5).
        assert_eq!(vocabulary_entry_bytes("æĹ"), vec![0xE6, 0x97]);
        assert_eq!(vocabulary_entry_bytes("<|im_end|>"), b"<|im_end|>");
    }
}
