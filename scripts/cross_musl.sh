#!/usr/bin/env bash
# The static Linux check: builds glimpse for x86_64-unknown-linux-musl (one fully static
# binary: no glibc, runs on Alpine and any Linux), checks that it is static, and runs the
# server tests against it (tests/common's GLIMPSE_TEST_BIN): the same requests and expected
# answers as for the glibc build. Installs musl-tools (musl-gcc, for the C in mozjpeg-sys,
# onig and ring) and the Rust target when missing. Built with the test profile (optimized,
# incremental) in the host's target dir of the test cache, whose build scripts and proc macros
# it shares (scripts/cross_common.sh); `cargo build --release --target x86_64-unknown-linux-musl`
# makes the binary to ship the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross_common.sh

target=$MUSL_TARGET
if [ "$(uname -m)" != x86_64 ]; then
  echo "not an x86_64 host: no musl check"
  exit 0
fi
ensure_packages "${MUSL_PACKAGES[@]}"
ensure_rust_target "$target"
export CC_x86_64_unknown_linux_musl=musl-gcc
export AR_x86_64_unknown_linux_musl=ar
use_target_dir host

bin="$CARGO_TARGET_DIR/$target/debug/glimpse"
check_static() {
  file "$bin"
  file -b "$bin" | grep -Eq "static(-pie)? linked"
  "$bin" --version
}

step musl "build" cargo build --quiet --profile test --target "$target" --bin glimpse
step musl "static binary check" check_static
# The host's test binary (built by the main test run) drives the static server.
test_step musl "server tests against the static binary" env GLIMPSE_TEST_BIN="$(realpath "$bin")" \
  cargo test --quiet --test integration -- \
  server_api:: server_openai_client::
