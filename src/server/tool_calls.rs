//! Function calls in an answer: the Qwen template asks the model to write each call as
//! `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`; these blocks become
//! OpenAI `tool_calls` (arguments as JSON text) and the rest stays the message's content.
//! `CallSplitter` does the same on a stream, holding back text that may be the start of a
//! call until it is known not to be.
use serde_json::{json, Value};

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// One function call found in an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundCall {
    pub id: String,
    pub name: String,
    /// The arguments as compact JSON text.
    pub arguments: String,
}

impl FoundCall {
    /// The OpenAI `tool_calls[i]` object (`index` set for stream deltas).
    pub fn json(&self, index: Option<usize>) -> Value {
        let mut call = json!({
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        });
        if let Some(index) = index {
            call["index"] = json!(index);
        }
        call
    }
}

/// What a piece of answer text turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Call(FoundCall),
}

/// The call a block's body describes, if it is one (`{"name": "…", "arguments": …}`).
fn parse_call(body: &str) -> Option<FoundCall> {
    let value: Value = serde_json::from_str(body.trim()).ok()?;
    let name = value.get("name")?.as_str()?.to_owned();
    let arguments = match value.get("arguments") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    Some(FoundCall {
        id: format!("call_{:024x}", rand::random::<u128>() >> 32),
        name,
        arguments,
    })
}

/// Splits a stream of answer text into text and calls.
#[derive(Default)]
pub struct CallSplitter {
    pending: String,
}

impl CallSplitter {
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        self.pending.push_str(text);
        let mut pieces = Vec::new();
        loop {
            match self.pending.find(OPEN) {
                Some(start) => {
                    let Some(end) = self.pending[start..].find(CLOSE).map(|e| start + e) else {
                        push_text(&mut pieces, &self.pending[..start]);
                        self.pending.drain(..start);
                        return pieces;
                    };
                    let block_end = end + CLOSE.len();
                    push_text(&mut pieces, &self.pending[..start]);
                    match parse_call(&self.pending[start + OPEN.len()..end]) {
                        Some(call) => pieces.push(Piece::Call(call)),
                        None => push_text(&mut pieces, &self.pending[start..block_end]),
                    }
                    self.pending.drain(..block_end);
                }
                None => {
                    // Keep a tail that may still grow into "<tool_call>".
                    let keep = (1..OPEN.len())
                        .rev()
                        .find(|&n| self.pending.ends_with(&OPEN[..n]))
                        .unwrap_or(0);
                    let split = self.pending.len() - keep;
                    push_text(&mut pieces, &self.pending[..split]);
                    self.pending.drain(..split);
                    return pieces;
                }
            }
        }
    }

    /// The text held back at the end (an unfinished call stays text).
    pub fn finish(self) -> Vec<Piece> {
        let mut pieces = Vec::new();
        push_text(&mut pieces, &self.pending);
        pieces
    }
}

fn push_text(pieces: &mut Vec<Piece>, text: &str) {
    if !text.is_empty() {
        pieces.push(Piece::Text(text.to_owned()));
    }
}

/// A whole answer's content (the text outside calls, trimmed) and its calls.
pub fn split_answer(text: &str) -> (String, Vec<FoundCall>) {
    let mut splitter = CallSplitter::default();
    let mut pieces = splitter.push(text);
    pieces.extend(splitter.finish());
    let mut content = String::new();
    let mut calls = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => content.push_str(&text),
            Piece::Call(call) => calls.push(call),
        }
    }
    (content.trim().to_owned(), calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_taken_out_of_the_text() {
        let (content, calls) = split_answer(
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>",
        );
        assert_eq!(content, "Let me check.");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].arguments, r#"{"city":"Paris"}"#);
        assert_eq!(calls[1].arguments, "{}");
        assert_ne!(calls[0].id, calls[1].id);
    }

    #[test]
    fn blocks_that_are_not_calls_stay_text() {
        let text = "<tool_call>\nnot json\n</tool_call> and <tool_call> unfinished";
        let (content, calls) = split_answer(text);
        assert!(calls.is_empty());
        assert_eq!(content, text);
    }

    #[test]
    fn a_call_split_across_deltas_comes_out_whole_and_text_is_not_held_longer_than_needed() {
        let mut splitter = CallSplitter::default();
        assert_eq!(splitter.push("Hi <"), vec![Piece::Text("Hi ".into())]);
        assert_eq!(splitter.push("b"), vec![Piece::Text("<b".into())]);
        assert!(splitter
            .push(" <tool_")
            .iter()
            .all(|p| matches!(p, Piece::Text(t) if t == " ")));
        assert!(splitter.push("call>\n{\"name\": \"f\", ").is_empty());
        let pieces = splitter.push("\"arguments\": {\"x\": 1}}\n</tool_call>!");
        assert!(
            matches!(&pieces[0], Piece::Call(call) if call.name == "f" && call.arguments == r#"{"x":1}"#)
        );
        assert_eq!(pieces[1], Piece::Text("!".into()));
        assert!(splitter.finish().is_empty());
    }
}
