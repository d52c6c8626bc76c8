#!/usr/bin/env bash
# The aarch64 (edge board) check: cross-builds glimpse for aarch64-unknown-linux-gnu with
# Debian's cross gcc (the C in mozjpeg-sys, ring and onig needs it) and runs the kernel unit
# tests (NEON against scalar) and the tiny-model parity test under qemu-user. Installs the
# cross toolchain, qemu-user and the Rust target when missing. The cross settings are
# environment variables set here, not a .cargo/config.toml, so native builds are unaffected.
# Everything builds with the test profile (optimized, for the code under qemu; incremental, so a
# warm cache rebuilds only what changed) in the host's target dir of the test cache, whose build
# scripts and proc macros it shares (scripts/cross_common.sh). Prints the wall time and test
# count of each step.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross_common.sh

target=$AARCH64_TARGET
sysroot=/usr/aarch64-linux-gnu
if [ "$(uname -m)" = aarch64 ]; then
  echo "aarch64 host: the native tests already ran NEON; no cross check"
  exit 0
fi

ensure_packages "${AARCH64_PACKAGES[@]}"
ensure_rust_target "$target"

export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"
# The parity test runs `glimpse convert`, an aarch64 binary the emulated test cannot exec
# by itself (no binfmt_misc in containers): tests/common runs it through this.
export GLIMPSE_TEST_RUNNER="qemu-aarch64 -L $sysroot"
# rustc's warnings (dead code, unused imports under aarch64's cfgs) fail the build; a separate
# aarch64 clippy pass would cost minutes of the CI budget.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-D warnings"
use_target_dir host
cross=(--profile test --quiet --target "$target")

check_binary() {
  local bin="$CARGO_TARGET_DIR/$target/debug/glimpse"
  file "$bin"
  file -b "$bin" | grep -q "ARM aarch64"
  qemu-aarch64 -L "$sysroot" "$bin" --version
}

# One cargo run builds the binary and both test binaries, so the crates compile side by side.
step aarch64 "build: binary, kernel and integration tests" \
  cargo test "${cross[@]}" --no-run --lib --test integration
step aarch64 "binary check" check_binary
test_step aarch64 "kernel tests under qemu" cargo test "${cross[@]}" --lib kernels
# The parity test needs the real tokenizer (scripts/fetch_tokenizer.sh, run by test.sh).
./scripts/fetch_tokenizer.sh
# qemu emulates every NEON multiply-add: both fixture models, five of the nine conversations
# (text, one resized image, two images of different sizes, several turns, an early stop);
# the native run covers all nine.
test_step aarch64 "tiny-model parity under qemu" \
  env GLIMPSE_PARITY_CASES=text_only,one_image_resize,two_images_text_between,multi_turn,stops_early \
  cargo test "${cross[@]}" --test integration -- model_parity::
