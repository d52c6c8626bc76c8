#!/usr/bin/env bash
# The aarch64 (edge board) check: cross-builds glimpse for aarch64-unknown-linux-gnu with
# Debian's cross gcc (the C in mozjpeg-sys, ring and onig needs it) and runs the kernel unit
# tests (NEON against scalar) and the tiny-model parity test under qemu-user. Installs the
# cross toolchain, qemu-user and the Rust target when missing. The cross settings are
# environment variables set here, not a .cargo/config.toml, so native builds are unaffected.
# Tests build with --release so they share the release build's compiled dependencies (qemu
# and a second profile's build would not fit the time). Prints the wall time of each step.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
if [ "$(uname -m)" = aarch64 ]; then
  echo "aarch64 host: the native tests already ran NEON; no cross check"
  exit 0
fi

missing=()
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || missing+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v file >/dev/null || missing+=(file)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi

export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"
# The parity test runs `glimpse convert`, an aarch64 binary the emulated test cannot exec
# by itself (no binfmt_misc in containers): tests/common runs it through this.
export GLIMPSE_TEST_RUNNER="qemu-aarch64 -L $sysroot"

step() {
  local name=$1 start=$SECONDS
  shift
  echo "== aarch64: $name"
  "$@"
  echo "== aarch64: $name took $((SECONDS - start)) s"
}

check_binary() {
  local bin="${CARGO_TARGET_DIR:-target}/$target/release/glimpse"
  file "$bin"
  file -b "$bin" | grep -q "ARM aarch64"
  qemu-aarch64 -L "$sysroot" "$bin" --version
}

step "clippy (lib)" cargo clippy --release --quiet --target "$target" --lib -- -D warnings
step "release build" cargo build --release --quiet --target "$target" --bin glimpse
step "binary check" check_binary
step "kernel tests under qemu" cargo test --release --quiet --target "$target" --lib kernels
# The parity test needs the real tokenizer (scripts/fetch_tokenizer.sh, run by test.sh).
./scripts/fetch_tokenizer.sh
step "tiny-model parity under qemu" cargo test --release --quiet --target "$target" \
  --test model_parity
