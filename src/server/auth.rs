//! API keys: when any is configured (`--api-key`, repeatable, or `GLIMPSE_API_KEY`;
//! `--api-key-file`, one key per line), requests must carry one of them, as
//! `Authorization: Bearer <key>` (OpenAI clients) or `x-api-key: <key>` (Anthropic
//! clients). The file is read again on SIGHUP (`watch_key_file`), so keys can be added and
//! revoked without a restart. Keys are compared in constant time, and every key is
//! compared, so response timing reveals neither how much of a guess was right nor which key
//! it resembled.
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::{bail, Context, Result};

/// The keys that open the API.
pub struct ApiKeys {
    /// From the command line / environment; they stay for the server's life.
    fixed: Vec<String>,
    /// `--api-key-file`, read at start and on every reload.
    file: Option<PathBuf>,
    /// `fixed` plus the file's keys as last read.
    current: RwLock<Vec<String>>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.count())
            .field("file", &self.file)
            .finish()
    }
}

impl ApiKeys {
    /// No key: the API is open.
    pub fn open() -> Self {
        Self {
            fixed: Vec::new(),
            file: None,
            current: RwLock::new(Vec::new()),
        }
    }

    /// `keys` (empty ones ignored) plus those of `file`, which must hold at least one.
    pub fn new(keys: Vec<String>, file: Option<PathBuf>) -> Result<Self> {
        let fixed: Vec<String> = keys
            .into_iter()
            .map(|key| key.trim().to_owned())
            .filter(|key| !key.is_empty())
            .collect();
        let mut current = fixed.clone();
        if let Some(path) = &file {
            let from_file = read_key_file(path)?;
            if from_file.is_empty() {
                bail!(
                    "--api-key-file {} holds no key (one key per line; # starts a comment)",
                    path.display()
                );
            }
            current.extend(from_file);
        }
        Ok(Self {
            fixed,
            file,
            current: RwLock::new(current),
        })
    }

    /// Whether requests need a key. A server started with keys stays closed even when a
    /// reload leaves it none (then nobody gets in until keys are added back).
    pub fn required(&self) -> bool {
        !self.fixed.is_empty() || self.file.is_some()
    }

    pub fn count(&self) -> usize {
        self.current.read().map(|keys| keys.len()).unwrap_or(0)
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Reads the key file again; on failure the keys in use stay. The number of keys now.
    pub fn reload(&self) -> Result<usize> {
        let Some(path) = &self.file else {
            return Ok(self.count());
        };
        let mut keys = self.fixed.clone();
        keys.extend(read_key_file(path)?);
        let count = keys.len();
        if let Ok(mut current) = self.current.write() {
            *current = keys;
        }
        Ok(count)
    }

    /// Whether the request's `Authorization` or `x-api-key` header holds a key.
    pub fn authorizes(&self, authorization: Option<&str>, x_api_key: Option<&str>) -> bool {
        if !self.required() {
            return true;
        }
        let offered = authorization
            .and_then(bearer_token)
            .into_iter()
            .chain(x_api_key.map(str::trim));
        let Ok(keys) = self.current.read() else {
            return false;
        };
        let mut matched = false;
        for token in offered.filter(|token| !token.is_empty()) {
            for key in keys.iter() {
                matched |= constant_time_eq(token.as_bytes(), key.as_bytes());
            }
        }
        matched
    }
}

/// One key per line; blank lines and lines starting with `#` are skipped.
fn read_key_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the API key file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// Reloads the key file whenever the process gets SIGHUP, logging the outcome (Unix).
#[cfg(unix)]
pub fn watch_key_file(keys: std::sync::Arc<ApiKeys>) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let Some(path) = keys.file().map(Path::to_path_buf) else {
        return Ok(());
    };
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())
        .context("installing the SIGHUP handler")?;
    std::thread::Builder::new()
        .name("glimpse-key-reload".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if hangup.swap(false, Ordering::SeqCst) {
                match keys.reload() {
                    Ok(count) => eprintln!(
                        "glimpse: SIGHUP: reloaded the API keys from {}: {count} keys in use",
                        path.display()
                    ),
                    Err(e) => eprintln!(
                        "glimpse: warning: SIGHUP: {e:#}; the {} keys in use stay",
                        keys.count()
                    ),
                }
            }
        })
        .context("starting the key reload thread")?;
    Ok(())
}

#[cfg(not(unix))]
pub fn watch_key_file(_keys: std::sync::Arc<ApiKeys>) -> Result<()> {
    Ok(())
}

fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        let y = b.get(i % b.len().max(1)).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_configured_key_passes_in_either_header() {
        assert!(ApiKeys::open().authorizes(None, None));
        let keys = ApiKeys::new(vec!["s3cret".into(), "other".into(), "".into()], None).unwrap();
        assert!(keys.authorizes(Some("Bearer s3cret"), None));
        assert!(keys.authorizes(Some("bearer  other "), None));
        assert!(keys.authorizes(None, Some("s3cret")));
        assert!(keys.authorizes(Some("Bearer wrong"), Some("other")));
        for header in [
            None,
            Some("Bearer nope"),
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("Basic s3cret"),
            Some("s3cret"),
            Some("Bearer "),
        ] {
            assert!(!keys.authorizes(header, None), "{header:?}");
        }
        for x_api_key in [Some(""), Some("nope"), Some("Bearer s3cret")] {
            assert!(!keys.authorizes(None, x_api_key), "{x_api_key:?}");
        }
        assert!(!format!("{keys:?}").contains("s3cret"), "Debug hides keys");
    }

    #[test]
    fn the_key_file_is_read_again_on_reload_and_a_bad_read_keeps_the_keys() {
        let dir = std::env::temp_dir().join(format!("glimpse-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.txt");
        std::fs::write(&path, "# team keys\nalpha\n\n  beta  \n").unwrap();
        let keys = ApiKeys::new(vec!["fixed".into()], Some(path.clone())).unwrap();
        assert_eq!(keys.count(), 3);
        for key in ["alpha", "beta", "fixed"] {
            assert!(keys.authorizes(None, Some(key)), "{key}");
        }
        std::fs::write(&path, "beta\n").unwrap();
        assert_eq!(keys.reload().unwrap(), 2);
        assert!(!keys.authorizes(None, Some("alpha")));
        assert!(keys.authorizes(None, Some("beta")) && keys.authorizes(None, Some("fixed")));
        std::fs::remove_file(&path).unwrap();
        assert!(keys.reload().is_err());
        assert!(
            keys.authorizes(None, Some("beta")),
            "a failed reload keeps the keys"
        );
        // Emptied: the server stays closed, with only the fixed key.
        std::fs::write(&path, "\n# none left\n").unwrap();
        assert_eq!(keys.reload().unwrap(), 1);
        assert!(keys.required() && !keys.authorizes(None, Some("beta")));
        // A file without keys at start is a mistake, not an open server.
        assert!(ApiKeys::new(Vec::new(), Some(path.clone())).is_err());
        assert!(ApiKeys::new(Vec::new(), Some(dir.join("missing"))).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
