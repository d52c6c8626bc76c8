//! The Qwen byte-level BPE tokenizer: a thin wrapper over the `tokenizers` crate built from the
//! HF `tokenizer.json` bytes (stored verbatim in the GGUF). Encoding never adds special tokens
//! (Qwen prepends no BOS); `<|...|>` special tokens written in the text are matched atomically.
//! Incremental decoding lives in `stream_decoder.rs`.

use anyhow::{anyhow, Result};

use super::stream_decoder::StreamDecoder;
use super::token_bytes::vocabulary_entry_bytes;

/// A loaded tokenizer (vocabulary, merges, added/special tokens, pre-tokenizer, decoder).
#[derive(Debug)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// Builds the tokenizer from the bytes of an HF `tokenizer.json`.
    pub fn from_json_bytes(json: &[u8]) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| anyhow!("tokenizer.json could not be loaded: {e}"))?;
        Ok(Self { inner })
    }

    /// Token ids of `text`, without adding any special token around it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| anyhow!("tokenizing {} bytes of text failed: {e}", text.len()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`; with `skip_special` the special tokens (`<|im_end|>`, ...) are left out.
    /// Byte sequences that are not valid UTF-8 come out as U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| anyhow!("decoding {} token ids failed: {e}", ids.len()))
    }

    /// The id of a token written exactly as in the vocabulary (e.g. `"<|im_start|>"`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary string of a token id (byte-level form for ordinary tokens).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Number of token ids the tokenizer knows, added tokens included. The model's embedding
    /// table may be larger (padded); ids at or above this value decode to nothing.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The exact bytes token `id` stands for (possibly part of a UTF-8 character).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.id_to_token(id)
            .map(|entry| vocabulary_entry_bytes(&entry))
            .unwrap_or_default()
    }

    /// The special added tokens (`<|im_end|>`, `<|image_pad|>`, …) and their text.
    pub fn special_token_ids(&self) -> Vec<(u32, String)> {
        let mut special: Vec<(u32, String)> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, token)| token.special)
            .map(|(id, token)| (id, token.content))
            .collect();
        special.sort();
        special
    }

    /// A decoder that turns a stream of generated ids into text pieces.
    pub fn stream_decoder(&self, skip_special: bool) -> StreamDecoder<'_> {
        StreamDecoder::new(self, skip_special)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::fixture_tokenizer;

    #[test]
    fn special_tokens_have_the_qwen_ids() {
        let tokenizer = fixture_tokenizer();
        for (token, id) in [
            ("<|endoftext|>", 151643),
            ("<|im_start|>", 151644),
            ("<|im_end|>", 151645),
            ("<|vision_start|>", 151652),
            ("<|vision_end|>", 151653),
            ("<|image_pad|>", 151655),
            ("<|video_pad|>", 151656),
        ] {
            assert_eq!(tokenizer.token_to_id(token), Some(id), "{token}");
            assert_eq!(tokenizer.id_to_token(id).as_deref(), Some(token), "{id}");
        }
    }

    #[test]
    fn vocab_size_counts_added_tokens() {
        assert_eq!(fixture_tokenizer().vocab_size(), 151669);
    }

    #[test]
    fn encode_adds_no_bos_and_matches_hf_ids() {
        let tokenizer = fixture_tokenizer();
        // Reference ids from the Python `tokenizers` package on the same tokenizer.json.
        assert_eq!(tokenizer.encode("Hello").unwrap(), vec![9707]);
        assert_eq!(
            tokenizer.encode("Hello, world!").unwrap(),
            vec![9707, 11, 1879, 0]
        );
        assert_eq!(
            tokenizer.encode("Describe this image.").unwrap(),
            vec![74785, 419, 2168, 13]
        );
        assert_eq!(
            tokenizer.encode("你好，世界").unwrap(),
            vec![108386, 3837, 99489]
        );
        assert_eq!(tokenizer.encode("").unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn special_tokens_in_text_are_matched_atomically() {
        let tokenizer = fixture_tokenizer();
        assert_eq!(
            tokenizer
                .encode("<|im_start|>user\nHi<|im_end|>\n")
                .unwrap(),
            vec![151644, 872, 198, 13048, 151645, 198]
        );
        assert_eq!(
            tokenizer
                .encode("a<|vision_start|><|image_pad|><|image_pad|><|vision_end|>b")
                .unwrap(),
            vec![64, 151652, 151655, 151655, 151653, 65]
        );
    }

    #[test]
    fn decode_round_trips_and_can_skip_special_tokens() {
        let tokenizer = fixture_tokenizer();
        let text = "<|im_start|>assistant\nCafé ☕ 東京 🎉<|im_end|>";
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);
        assert_eq!(
            tokenizer.decode(&ids, true).unwrap(),
            "assistant\nCafé ☕ 東京 🎉"
        );
    }

    #[test]
    fn decode_of_a_split_character_yields_replacement_char() {
        let tokenizer = fixture_tokenizer();
        // In " 🎉 naïve" the emoji's four bytes are spread over three tokens.
        let ids = tokenizer.encode(" 🎉 naïve").unwrap();
        assert_eq!(ids, vec![11162, 236, 231, 94880, 586]);
        assert_eq!(tokenizer.decode(&ids[..2], false).unwrap(), " \u{FFFD}");
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), " 🎉 naïve");
    }
}
