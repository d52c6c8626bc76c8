//! Incremental detokenization for streaming output: ids go in one at a time, text pieces come
//! out as soon as they are complete characters. A multi-byte character split over several
//! byte-level tokens is held back until its last byte arrives, so no piece ever carries a
//! broken character, and the pieces concatenated equal `Tokenizer::decode` of all the ids.

use anyhow::{bail, Result};

use super::tokenizer::Tokenizer;

/// How `Tokenizer::decode` renders bytes that do not (yet) form a character.
const INCOMPLETE_CHAR: char = '\u{FFFD}';

/// Turns a stream of token ids into text pieces.
///
/// It keeps a small window of ids: the first `context_len` ones produced the piece emitted last
/// (kept as left context for decoders that depend on it), the rest are not emitted yet. Text is
/// emitted only when the window's decoded text does not end in U+FFFD, i.e. when the bytes seen
/// so far end on a complete character; every window therefore starts on a character boundary.
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    skip_special: bool,
    window: Vec<u32>,
    context_len: usize,
}

impl<'a> StreamDecoder<'a> {
    /// A decoder with nothing pushed yet; `skip_special` as in `Tokenizer::decode`.
    pub fn new(tokenizer: &'a Tokenizer, skip_special: bool) -> Self {
        Self {
            tokenizer,
            skip_special,
            window: Vec::new(),
            context_len: 0,
        }
    }

    /// Adds one id; returns the text it completes, or `None` while a character is incomplete
    /// (or the id decodes to nothing, e.g. a skipped special token).
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.window.push(id);
        let piece = self.pending_text()?;
        if piece.is_empty() || piece.ends_with(INCOMPLETE_CHAR) {
            return Ok(None);
        }
        self.window.drain(..self.context_len);
        self.context_len = self.window.len();
        Ok(Some(piece))
    }

    /// Ends the stream: returns whatever is still held back (an incomplete character comes out
    /// as U+FFFD, exactly as `Tokenizer::decode` renders it).
    pub fn finish(self) -> Result<String> {
        self.pending_text()
    }

    /// Decoded text of the ids not yet emitted, in the context of the last emitted ones.
    fn pending_text(&self) -> Result<String> {
        let context = self
            .tokenizer
            .decode(&self.window[..self.context_len], self.skip_special)?;
        let full = self.tokenizer.decode(&self.window, self.skip_special)?;
        match full.strip_prefix(&context) {
            Some(pending) => Ok(pending.to_owned()),
            None => bail!(
                "streaming decode: the text of ids {:?} does not extend the text already emitted",
                self.window
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::fixture_tokenizer;
    use super::super::tokenizer::Tokenizer;

    /// Streams `ids` through a decoder; returns the emitted pieces and the final flush.
    fn stream(tokenizer: &Tokenizer, ids: &[u32], skip_special: bool) -> (Vec<String>, String) {
        let mut decoder = tokenizer.stream_decoder(skip_special);
        let pieces = ids
            .iter()
            .filter_map(|&id| decoder.push(id).unwrap())
            .collect();
        (pieces, decoder.finish().unwrap())
    }

    #[test]
    fn pieces_concatenate_to_full_decode_for_chinese_and_emoji() {
        let tokenizer = fixture_tokenizer();
        let text = "你好，世界！🎉🙂👍🏽 naïve café — 東京タワー 👨‍👩‍👧 done.";
        let ids = tokenizer.encode(text).unwrap();
        let (pieces, rest) = stream(&tokenizer, &ids, false);
        assert_eq!(pieces.concat() + &rest, text);
        assert_eq!(rest, "");
        assert!(pieces.len() > 5, "text should arrive in many pieces");
    }

    #[test]
    fn no_piece_contains_a_broken_character() {
        let tokenizer = fixture_tokenizer();
        // " 🎉 naïve" spreads the emoji's bytes over three tokens.
        let ids = tokenizer.encode(" 🎉 naïve 😀😀").unwrap();
        let mut decoder = tokenizer.stream_decoder(false);
        let mut pieces = Vec::new();
        for &id in &ids {
            let piece = decoder.push(id).unwrap();
            if let Some(piece) = &piece {
                assert!(!piece.contains('\u{FFFD}'), "broken piece {piece:?}");
            }
            pieces.push(piece);
        }
        assert_eq!(&pieces[..3], &[None, None, Some(" 🎉".to_owned())]);
        assert_eq!(
            pieces.into_iter().flatten().collect::<String>(),
            " 🎉 naïve 😀😀"
        );
    }

    #[test]
    fn skipped_special_tokens_emit_nothing() {
        let tokenizer = fixture_tokenizer();
        let ids = tokenizer.encode("Hi<|im_end|>").unwrap();
        let (pieces, rest) = stream(&tokenizer, &ids, true);
        assert_eq!(pieces, vec!["Hi".to_owned()]);
        assert_eq!(rest, "");
        let (pieces, _) = stream(&tokenizer, &ids, false);
        assert_eq!(pieces.concat(), "Hi<|im_end|>");
    }

    #[test]
    fn truncated_character_is_flushed_as_replacement_char_like_decode() {
        let tokenizer = fixture_tokenizer();
        let ids = tokenizer.encode(" 🎉").unwrap();
        let truncated = &ids[..ids.len() - 1];
        let (pieces, rest) = stream(&tokenizer, truncated, false);
        assert!(pieces.is_empty());
        assert_eq!(rest, tokenizer.decode(truncated, false).unwrap());
    }

    #[test]
    fn pieces_concatenate_to_full_decode_for_arbitrary_byte_tokens() {
        let tokenizer = fixture_tokenizer();
        // Byte-level tokens for 0x80..0xFF in scrambled order, mixed with text and special
        // tokens: mostly invalid UTF-8, which must still concatenate to `decode`.
        let mut ids: Vec<u32> = (0..400u32).map(|i| (i * 7919) % 256).collect();
        ids.extend([151644, 9707, 144841, 151645, 11162, 236, 9707]);
        for skip_special in [false, true] {
            let (pieces, rest) = stream(&tokenizer, &ids, skip_special);
            assert_eq!(
                pieces.concat() + &rest,
                tokenizer.decode(&ids, skip_special).unwrap()
            );
        }
    }
}
