#!/usr/bin/env bash
# The static Linux check: builds glimpse for x86_64-unknown-linux-musl (one fully static
# binary: no glibc, runs on Alpine and any Linux), checks that it is static, and runs the
# server tests against it (tests/common's GLIMPSE_TEST_BIN): the same requests and expected
# answers as for the glibc build. Installs musl-tools (musl-gcc, for the C in mozjpeg-sys,
# onig and ring) and the Rust target when missing. A release build: the binary to ship.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross_common.sh

target=x86_64-unknown-linux-musl
if [ "$(uname -m)" != x86_64 ]; then
  echo "not an x86_64 host: no musl check"
  exit 0
fi
ensure_packages musl-gcc:musl-tools file:file
ensure_rust_target "$target"
export CC_x86_64_unknown_linux_musl=musl-gcc
export AR_x86_64_unknown_linux_musl=ar

bin="${CARGO_TARGET_DIR:-target}/$target/release/glimpse"
check_static() {
  file "$bin"
  file -b "$bin" | grep -Eq "static(-pie)? linked"
  "$bin" --version
}

step musl "release build" cargo build --quiet --release --target "$target" --bin glimpse
step musl "static binary check" check_static
# The host's test binaries (built by the main test run) drive the static server.
step musl "server tests against the static binary" env GLIMPSE_TEST_BIN="$(realpath "$bin")" \
  cargo test --quiet --test server_api --test server_openai_client
