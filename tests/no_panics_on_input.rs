//! No `unwrap()` / `expect()` in code that handles requests or files: a grep over the
//! library sources (test modules and test-only files excluded) that allows a call only
//! when the line or the one above it states the internal invariant that makes it safe
//! (`// invariant: …`). Data from a request or a file must be handled with an error.
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("reading a source directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Names of modules declared `#[cfg(test)] mod name;` in `source`.
fn test_only_modules(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter(|pair| pair[0] == "#[cfg(test)]")
        .filter_map(|pair| {
            let declaration = ["pub(crate) ", "pub "]
                .iter()
                .find_map(|visibility| pair[1].strip_prefix(visibility))
                .unwrap_or(pair[1]);
            Some(
                declaration
                    .strip_prefix("mod ")?
                    .strip_suffix(';')?
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn library_code_never_unwraps_without_a_stated_invariant() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "gguf/src", "convert/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut test_only = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("reading a source file");
        for module in test_only_modules(&source) {
            let dir = file.parent().expect("a parent directory");
            test_only.push(dir.join(format!("{module}.rs")));
            test_only.push(dir.join(&module).join("mod.rs"));
        }
    }
    let mut offenders = Vec::new();
    let mut allowed = 0;
    for file in files.iter().filter(|f| !test_only.contains(f)) {
        let source = std::fs::read_to_string(file).expect("reading a source file");
        // Test modules sit at the end of a file, after a `#[cfg(…test…)]` attribute.
        let all: Vec<&str> = source.lines().collect();
        let end = (0..all.len())
            .find(|&i| {
                all[i].starts_with("#[cfg(")
                    && all[i].contains("test")
                    && all
                        .get(i + 1)
                        .is_some_and(|next| next.contains("mod tests"))
            })
            .unwrap_or(all.len());
        let lines = &all[..end];
        for (index, line) in lines.iter().enumerate() {
            let code_part = line.split("//").next().unwrap_or_default();
            if !(code_part.contains(".unwrap()") || code_part.contains(".expect(")) {
                continue;
            }
            let stated = line.contains("// invariant:")
                || index
                    .checked_sub(1)
                    .is_some_and(|above| lines[above].contains("// invariant:"));
            if stated {
                allowed += 1;
            } else {
                let relative = file.strip_prefix(root).unwrap_or(file);
                offenders.push(format!(
                    "{}:{}: {}",
                    relative.display(),
                    index + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "unwrap/expect without a stated invariant:\n{}",
        offenders.join("\n")
    );
    eprintln!("{allowed} unwrap/expect calls with a stated invariant");
}
