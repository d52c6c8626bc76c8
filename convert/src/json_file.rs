//! Reading the small JSON files of a checkpoint directory with errors that name the file.
use std::path::Path;

use anyhow::{Context, Result};

/// The whole file as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("failed to read '{}'", path.display()))
}

/// The file's text, or `None` when it does not exist.
pub fn read_optional_text(path: &Path) -> Result<Option<String>> {
    if path.exists() {
        read_text(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Parses JSON text that came from `path`.
pub fn parse_json(path: &Path, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).with_context(|| format!("'{}' is not valid JSON", path.display()))
}
