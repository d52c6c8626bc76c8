//! Thinking models' reasoning, split from the answer: their template opens the answer with
//! `<think>\n`, so what the model writes up to `</think>` is its reasoning
//! (`reasoning_content`, as vLLM and DeepSeek's API name it) and what follows, newlines
//! trimmed, the answer proper. An answer cut before `</think>` is all reasoning.
//! `ReasoningSplitter` does the same on a stream, holding back a possible `</think>` start.

const END: &str = "</think>";

/// What a piece of a thinking model's answer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Thought {
    Reasoning(String),
    Answer(String),
}

#[derive(Default)]
pub struct ReasoningSplitter {
    pending: String,
    /// `</think>` has been seen.
    answering: bool,
    /// The answer has not begun yet (its leading newlines are dropped).
    answer_started: bool,
}

impl ReasoningSplitter {
    pub fn push(&mut self, text: &str) -> Vec<Thought> {
        let mut pieces = Vec::new();
        if self.answering {
            self.answer(text, &mut pieces);
            return pieces;
        }
        self.pending.push_str(text);
        if let Some(at) = self.pending.find(END) {
            let reasoning = self.pending[..at].to_owned();
            let rest = self.pending[at + END.len()..].to_owned();
            self.pending.clear();
            self.answering = true;
            push_reasoning(&mut pieces, reasoning);
            self.answer(&rest, &mut pieces);
            return pieces;
        }
        let keep = (1..END.len())
            .rev()
            .find(|&n| self.pending.ends_with(&END[..n]))
            .unwrap_or(0);
        let split = self.pending.len() - keep;
        let reasoning = self.pending[..split].to_owned();
        self.pending.drain(..split);
        push_reasoning(&mut pieces, reasoning);
        pieces
    }

    fn answer(&mut self, text: &str, pieces: &mut Vec<Thought>) {
        let text = if self.answer_started {
            text
        } else {
            text.trim_start_matches('\n')
        };
        if !text.is_empty() {
            self.answer_started = true;
            pieces.push(Thought::Answer(text.to_owned()));
        }
    }

    /// What is held back at the end (reasoning that never closed).
    pub fn finish(self) -> Vec<Thought> {
        let mut pieces = Vec::new();
        push_reasoning(&mut pieces, self.pending);
        pieces
    }
}

/// A streamed answer as thoughts: split when the model thinks, all answer otherwise.
pub struct Thoughts(Option<ReasoningSplitter>);

impl Thoughts {
    pub fn new(thinks: bool) -> Self {
        Self(thinks.then(ReasoningSplitter::default))
    }

    pub fn push(&mut self, text: &str) -> Vec<Thought> {
        match &mut self.0 {
            Some(splitter) => splitter.push(text),
            None if text.is_empty() => Vec::new(),
            None => vec![Thought::Answer(text.to_owned())],
        }
    }

    /// What is held back at the end; nothing more comes after.
    pub fn finish(&mut self) -> Vec<Thought> {
        self.0
            .take()
            .map(ReasoningSplitter::finish)
            .unwrap_or_default()
    }
}

fn push_reasoning(pieces: &mut Vec<Thought>, text: String) {
    if !text.is_empty() {
        pieces.push(Thought::Reasoning(text));
    }
}

/// A whole answer's reasoning (trimmed of the newlines around it) and answer proper.
pub fn split_reasoning(text: &str) -> (String, String) {
    let mut splitter = ReasoningSplitter::default();
    let mut pieces = splitter.push(text);
    pieces.extend(splitter.finish());
    let (mut reasoning, mut answer) = (String::new(), String::new());
    for piece in pieces {
        match piece {
            Thought::Reasoning(text) => reasoning.push_str(&text),
            Thought::Answer(text) => answer.push_str(&text),
        }
    }
    (reasoning.trim_matches('\n').to_owned(), answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_ends_at_the_closing_tag() {
        let (reasoning, answer) = split_reasoning("Count the legs.\n</think>\n\nFour legs.");
        assert_eq!(
            (reasoning.as_str(), answer.as_str()),
            ("Count the legs.", "Four legs.")
        );
        let (reasoning, answer) = split_reasoning("Still thinking, cut by max_tokens");
        assert_eq!(
            (reasoning.as_str(), answer.as_str()),
            ("Still thinking, cut by max_tokens", "")
        );
    }

    #[test]
    fn a_tag_split_across_deltas_is_found() {
        let mut splitter = ReasoningSplitter::default();
        let mut pieces = splitter.push("Hmm </th");
        pieces.extend(splitter.push("ink>\n"));
        pieces.extend(splitter.push("\nYes"));
        pieces.extend(splitter.push("\n"));
        pieces.extend(splitter.finish());
        assert_eq!(
            pieces,
            vec![
                Thought::Reasoning("Hmm ".into()),
                Thought::Answer("Yes".into()),
                Thought::Answer("\n".into())
            ]
        );
    }
}
