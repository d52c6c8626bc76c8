#!/usr/bin/env bash
# The Windows check: builds glimpse.exe for x86_64-pc-windows-gnu with Debian's mingw-w64
# (also the C compiler of mozjpeg-sys, onig and ring), with warnings as errors, so Unix-only
# code outside cfg(unix) fails here. Build only: no Windows machine runs it. Installs
# mingw-w64 and the Rust target when missing; uses the quick `cross-check` profile, in the
# test cache's windows-gnu target dir (scripts/cross_common.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross_common.sh

target=x86_64-pc-windows-gnu
ensure_packages x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64 x86_64-w64-mingw32-g++:g++-mingw-w64-x86-64 file:file
ensure_rust_target "$target"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-D warnings"
use_target_dir windows-gnu

check_exe() {
  local exe="$CARGO_TARGET_DIR/$target/cross-check/glimpse.exe"
  file "$exe"
  file -b "$exe" | grep -q "PE32+ executable"
}

step windows "build" cargo build --quiet --profile cross-check --target "$target" --bin glimpse
step windows "binary check" check_exe
