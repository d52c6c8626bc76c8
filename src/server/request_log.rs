//! The request log on stderr: one line per answered request, as logfmt text or as a JSON
//! object. `GLIMPSE_LOG` picks the level (`off`; `info`, the default: API requests;
//! `debug`, or `serve -v`: every request, with per-stage timings and the user agent) and
//! `GLIMPSE_LOG_FORMAT` the format (`text` or `json`). Only what is listed in
//! `RequestRecord` is written: never a body, an image, a header value other than the user
//! agent, or a query string (API keys never appear).
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use crate::engine::{FinishReason, Timings};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Info,
    Debug,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLog {
    pub level: LogLevel,
    pub format: LogFormat,
}

impl RequestLog {
    /// From `GLIMPSE_LOG` / `GLIMPSE_LOG_FORMAT` (given as `level` / `format`); `verbose`
    /// (`-v`) raises the level to debug unless the variable says `off`.
    pub fn from_settings(level: Option<&str>, format: Option<&str>, verbose: bool) -> Result<Self> {
        let level = match level.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") => {
                if verbose {
                    LogLevel::Debug
                } else {
                    LogLevel::Info
                }
            }
            Some("off") => LogLevel::Off,
            Some("info") if verbose => LogLevel::Debug,
            Some("info") => LogLevel::Info,
            Some("debug") => LogLevel::Debug,
            Some(other) => bail!("GLIMPSE_LOG must be off, info or debug (got '{other}')"),
        };
        let format = match format.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("GLIMPSE_LOG_FORMAT must be text or json (got '{other}')"),
        };
        Ok(Self { level, format })
    }

    /// Writes `record` to stderr if the level asks for it (health checks and metrics
    /// scrapes only at debug).
    pub fn write(&self, record: &RequestRecord) {
        let wanted = match self.level {
            LogLevel::Off => false,
            LogLevel::Info => !record.is_probe(),
            LogLevel::Debug => true,
        };
        if wanted {
            eprintln!("{}", self.line(record));
        }
    }

    pub fn line(&self, record: &RequestRecord) -> String {
        let fields = record.fields(self.level >= LogLevel::Debug);
        match self.format {
            LogFormat::Json => Value::Object(fields).to_string(),
            LogFormat::Text => logfmt(&fields),
        }
    }
}

/// What one generation reports to the log once it is done.
#[derive(Clone, Debug)]
pub struct GenerationSummary {
    pub completion_tokens: usize,
    pub finish_reason: FinishReason,
    pub timings: Timings,
    pub ttft_ms: f64,
}

/// Shared between a generation (which fills it when done) and the transport (which logs
/// it after the last byte is written).
pub type GenerationSlot = Arc<Mutex<Option<GenerationSummary>>>;

/// One answered request, as the log shows it.
#[derive(Debug, Default)]
pub struct RequestRecord {
    pub method: String,
    /// Without the query string.
    pub path: String,
    pub route: &'static str,
    pub status: u16,
    pub ms: f64,
    pub client: Option<String>,
    pub user_agent: Option<String>,
    /// The error's `code` for refused requests.
    pub error: Option<&'static str>,
    /// What the client was not told about its error (e.g. why an image URL was refused).
    pub error_detail: Option<String>,
    pub stream: bool,
    pub generation: Option<GenerationSummary>,
    /// Why writing the answer failed (usually: the client went away).
    pub write_error: Option<String>,
}

impl RequestRecord {
    fn is_probe(&self) -> bool {
        matches!(self.route, "/health" | "/metrics")
    }

    fn fields(&self, debug: bool) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("ts".into(), json!(utc_now()));
        fields.insert("method".into(), json!(self.method));
        fields.insert("path".into(), json!(self.path));
        fields.insert("status".into(), json!(self.status));
        fields.insert("ms".into(), json!(round1(self.ms)));
        if let Some(client) = &self.client {
            fields.insert("client".into(), json!(client));
        }
        if let Some(code) = self.error {
            fields.insert("error".into(), json!(code));
        }
        if let Some(detail) = &self.error_detail {
            fields.insert("error_detail".into(), json!(detail));
        }
        if self.route == "/v1/chat/completions" && self.status < 300 {
            fields.insert("stream".into(), json!(self.stream));
        }
        if let Some(g) = &self.generation {
            let t = &g.timings;
            fields.insert("prompt_tokens".into(), json!(t.prompt_tokens));
            fields.insert("cached_tokens".into(), json!(t.cached_prompt_tokens));
            fields.insert("completion_tokens".into(), json!(g.completion_tokens));
            let finish = match g.finish_reason {
                FinishReason::Stop => "stop",
                FinishReason::Length => "length",
            };
            fields.insert("finish".into(), json!(finish));
            if debug {
                fields.insert("images_encoded".into(), json!(t.images_encoded));
                fields.insert("ttft_ms".into(), json!(round1(g.ttft_ms)));
                fields.insert("vision_ms".into(), json!(round1(t.vision_ms)));
                fields.insert("prefill_ms".into(), json!(round1(t.prefill_ms)));
                fields.insert("decode_ms".into(), json!(round1(t.decode_ms)));
            }
        }
        if let Some(e) = &self.write_error {
            fields.insert("client_gone".into(), json!(e));
        }
        if debug {
            if let Some(agent) = &self.user_agent {
                fields.insert("user_agent".into(), json!(agent));
            }
        }
        fields
    }
}

/// The current time as RFC 3339 UTC with milliseconds, e.g. `2026-12-02T16:14:56.123Z`.
pub fn utc_now() -> String {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    utc_timestamp(since_epoch.as_secs(), since_epoch.subsec_millis())
}

pub fn utc_timestamp(seconds: u64, millis: u32) -> String {
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `key=value` pairs; strings with spaces, quotes, `=` or control characters are quoted
/// with JSON escaping, so a client-chosen path cannot forge fields or lines.
fn logfmt(fields: &Map<String, Value>) -> String {
    let mut line = String::new();
    for (key, value) in fields {
        if !line.is_empty() {
            line.push(' ');
        }
        let text = match value {
            Value::String(s)
                if !s.is_empty()
                    && !s
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || "\"=\\".contains(c)) =>
            {
                s.clone()
            }
            other => other.to_string(),
        };
        let _ = write!(line, "{key}={text}");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RequestRecord {
        RequestRecord {
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            route: "/v1/chat/completions",
            status: 200,
            ms: 123.456,
            client: Some("127.0.0.1".into()),
            user_agent: Some("curl/8".into()),
            stream: true,
            generation: Some(GenerationSummary {
                completion_tokens: 7,
                finish_reason: FinishReason::Length,
                timings: Timings {
                    prompt_tokens: 30,
                    cached_prompt_tokens: 12,
                    vision_ms: 5.0,
                    ..Timings::default()
                },
                ttft_ms: 40.0,
            }),
            ..RequestRecord::default()
        }
    }

    #[test]
    fn settings_come_from_the_variables_and_the_flag() {
        let parse = |l, f, v| RequestLog::from_settings(l, f, v).unwrap();
        assert_eq!(parse(None, None, false).level, LogLevel::Info);
        assert_eq!(parse(None, None, true).level, LogLevel::Debug);
        assert_eq!(parse(Some("off"), None, true).level, LogLevel::Off);
        assert_eq!(
            parse(Some("DEBUG"), Some("json"), false).format,
            LogFormat::Json
        );
        assert!(RequestLog::from_settings(Some("loud"), None, false)
            .unwrap_err()
            .to_string()
            .contains("GLIMPSE_LOG"));
        assert!(RequestLog::from_settings(None, Some("xml"), false).is_err());
    }

    #[test]
    fn info_lines_carry_method_path_status_tokens_and_time() {
        let log = RequestLog::from_settings(None, None, false).unwrap();
        let line = log.line(&record());
        for field in [
            "method=POST",
            "path=/v1/chat/completions",
            "status=200",
            "ms=123.5",
            "prompt_tokens=30",
            "cached_tokens=12",
            "completion_tokens=7",
            "finish=length",
            "stream=true",
        ] {
            assert!(line.contains(field), "{field} missing from {line}");
        }
        assert!(!line.contains("user_agent"), "{line}");
        assert!(!line.contains("vision_ms"), "{line}");
    }

    #[test]
    fn debug_json_lines_add_timings_and_parse_back() {
        let log = RequestLog::from_settings(Some("debug"), Some("json"), false).unwrap();
        let value: Value = serde_json::from_str(&log.line(&record())).unwrap();
        assert_eq!(value["status"], 200);
        assert_eq!(value["vision_ms"], 5.0);
        assert_eq!(value["user_agent"], "curl/8");
    }

    #[test]
    fn hostile_paths_cannot_forge_fields_or_lines() {
        let log = RequestLog::from_settings(None, None, false).unwrap();
        let mut hostile = record();
        hostile.path = "/x status=500\nmethod=GET".into();
        let line = log.line(&hostile);
        assert!(!line.contains('\n'));
        assert!(
            line.contains(r#"path="/x status=500\nmethod=GET""#),
            "{line}"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(utc_timestamp(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_timestamp(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(
            utc_timestamp(1_796_229_296, 123),
            "2026-12-02T16:34:56.123Z"
        );
    }

    #[test]
    fn probes_are_logged_only_at_debug() {
        let probe = RequestRecord {
            route: "/health",
            ..RequestRecord::default()
        };
        assert!(probe.is_probe());
        assert!(!record().is_probe());
    }
}
