#!/usr/bin/env bash
# The Windows check: builds glimpse.exe for x86_64-pc-windows-gnu with Debian's mingw-w64
# (also the C compiler of mozjpeg-sys, onig and ring), with warnings as errors, so Unix-only
# code outside cfg(unix) fails here. Build only: no Windows machine runs it. Installs
# mingw-w64 and the Rust target when missing. Builds in the host's target dir of the test cache
# with the test profile, sharing the host's build scripts and proc macros
# (scripts/cross_common.sh), but without optimization: `-C opt-level=0` in the target's
# RUSTFLAGS comes after the profile's level and wins, since nothing runs this binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross_common.sh

target=$WINDOWS_TARGET
ensure_packages "${WINDOWS_PACKAGES[@]}"
ensure_rust_target "$target"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-D warnings -C opt-level=0"
use_target_dir host

check_exe() {
  local exe="$CARGO_TARGET_DIR/$target/debug/glimpse.exe"
  file "$exe"
  file -b "$exe" | grep -q "PE32+ executable"
}

step windows "build" cargo build --quiet --profile test --target "$target" --bin glimpse
step windows "binary check" check_exe
