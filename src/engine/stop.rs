//! Stop strings: text is released only once it can no longer be the start of a stop
//! string, so a stop string is never emitted, even when it is split across tokens.

/// What to do with the text seen so far.
#[derive(Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// Safe to send; generation goes on.
    Emit(String),
    /// A stop string was found: send `text` (everything before it) and stop.
    Stopped { text: String, stop: String },
}

pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    /// Empty stop strings are ignored.
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> StopOutcome {
        self.pending.push_str(text);
        if let Some((at, stop)) = self
            .stops
            .iter()
            .filter_map(|s| Some((self.pending.find(s.as_str())?, s)))
            .min_by_key(|(at, _)| *at)
        {
            let text = self.pending[..at].to_owned();
            let stop = stop.clone();
            self.pending.clear();
            return StopOutcome::Stopped { text, stop };
        }
        let keep_from = self.held_back_start();
        let emitted = self.pending[..keep_from].to_owned();
        self.pending.drain(..keep_from);
        StopOutcome::Emit(emitted)
    }

    /// Text held back at the end of generation (it never completed a stop string).
    pub fn finish(self) -> String {
        self.pending
    }

    /// Start of the shortest suffix of `pending` that is a proper prefix of a stop string.
    fn held_back_start(&self) -> usize {
        self.pending
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| self.stops.iter().any(|s| s.starts_with(&self.pending[i..])))
            .unwrap_or(self.pending.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let mut out = String::new();
        for p in pieces {
            match m.push(p) {
                StopOutcome::Emit(t) => out.push_str(&t),
                StopOutcome::Stopped { text: t, .. } => {
                    out.push_str(&t);
                    return (out, true);
                }
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn the_matched_stop_string_is_named() {
        let mut m = StopMatcher::new(&["x".into(), "über".into()]);
        assert_eq!(
            m.push("a über x"),
            StopOutcome::Stopped {
                text: "a ".into(),
                stop: "über".into()
            }
        );
    }

    #[test]
    fn stop_string_split_across_tokens_is_not_emitted() {
        assert_eq!(
            run(&["END"], &["Hello E", "N", "D more"]),
            ("Hello ".into(), true)
        );
    }

    #[test]
    fn near_miss_is_released_in_full() {
        assert_eq!(
            run(&["END"], &["Hello EN", "d"]),
            ("Hello ENd".into(), false)
        );
    }

    #[test]
    fn earliest_of_several_stops_wins_and_multibyte_text_is_safe() {
        assert_eq!(run(&["über", "x"], &["a ü", "ber x"]), ("a ".into(), true));
        assert_eq!(
            run(&["\n\n"], &["日本", "語\n", "\n"]),
            ("日本語".into(), true)
        );
    }
}
