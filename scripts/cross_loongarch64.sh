#!/usr/bin/env bash
# The LoongArch64 check: cross-builds glimpse for loongarch64-unknown-linux-musl and runs the
# kernel unit tests (LoongArch has no SIMD path: the portable scalar kernels) and the
# tiny-model parity test under qemu-user. Debian 12 has no loongarch64 cross gcc and rustup
# has no rust-std for the target here, so:
#  - std is built from source (rust-src, -Zbuild-std, RUSTC_BOOTSTRAP=1 on the stable
#    toolchain), for musl so the binaries are static and need no sysroot under qemu;
#  - Zig (PyPI's ziglang, pip-installed into a venv in the test cache) is the C compiler for the
#    C in mozjpeg-sys, onig_sys and ring, and the linker (with its own musl and libunwind);
#  - LSX is turned off (Rust's and Zig's default CPU for the target has it) because
#    Debian 12's qemu 7.2 does not emulate it; the binary then runs on any LoongArch64.
# Installs qemu-user, file, python3-venv, rust-src and ziglang when missing. The cross
# settings are environment variables set here, not a .cargo/config.toml, so native builds
# are unaffected. Everything builds with the test profile (optimized, for the code under qemu;
# incremental, so a warm cache rebuilds only what changed), std included, in a target dir of its
# own in the test cache (scripts/cross_common.sh): RUSTC_BOOTSTRAP=1 reaches build scripts
# (proc-macro2, anyhow and thiserror rerun when it changes), so sharing the host's would
# rebuild the proc macros, and all that uses them, on every switch. Prints the wall time and
# test count of each step.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross_common.sh

target=loongarch64-unknown-linux-musl
zig_version=0.17.0
if [ "$(uname -m)" = loongarch64 ]; then
  echo "loongarch64 host: the native tests already ran; no cross check"
  exit 0
fi

ensure_packages "${LOONGARCH64_PACKAGES[@]}"
ensure_rust_src

use_target_dir loongarch64
target_dir=$CARGO_TARGET_DIR
venv=$GLIMPSE_CI_CACHE/zig-$zig_version-venv
if ! "$venv/bin/python" -m ziglang version 2>/dev/null | grep -qx "$zig_version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "ziglang==$zig_version"
fi

# Compiler and linker wrappers. The CPU is the base LA64 ISA with hardware float (the lp64d
# ABI) and unaligned access, without LSX/LASX. The linker wrapper drops what zig cc does not
# take or must not get: cc-rs's --target (zig has its own -target), and libgcc_s (zig links
# its own libunwind; -lunwind stays).
wrappers=$target_dir/zig-loongarch64
mkdir -p "$wrappers"
zig_target="-target loongarch64-linux-musl -mcpu=generic_la64+f+d+ual"
for tool in cc c++; do
  cat >"$wrappers/$tool" <<EOF
#!/usr/bin/env bash
args=()
for a in "\$@"; do
  case "\$a" in
    --target=*|-lgcc_s) ;;
    *) args+=("\$a") ;;
  esac
done
exec "$venv/bin/python" -m ziglang $tool $zig_target "\${args[@]}"
EOF
  chmod +x "$wrappers/$tool"
done
printf '#!/bin/sh\nexec "%s/bin/python" -m ziglang ar "$@"\n' "$venv" >"$wrappers/ar"
chmod +x "$wrappers/ar"

export RUSTC_BOOTSTRAP=1
export CC_loongarch64_unknown_linux_musl=$wrappers/cc
export CXX_loongarch64_unknown_linux_musl=$wrappers/c++
export AR_loongarch64_unknown_linux_musl=$wrappers/ar
export CARGO_TARGET_LOONGARCH64_UNKNOWN_LINUX_MUSL_LINKER=$wrappers/cc
# Static, and Zig's C runtime objects rather than Rust's self-contained ones (which come with
# the rust-std component this toolchain does not have).
export CARGO_TARGET_LOONGARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=+crt-static,-lsx -C link-self-contained=no"
export CARGO_TARGET_LOONGARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-loongarch64
# The parity test runs `glimpse convert`, a loongarch64 binary the emulated test cannot exec
# by itself (no binfmt_misc in containers): tests/common runs it through this.
export GLIMPSE_TEST_RUNNER=qemu-loongarch64
# qemu-user without a reserved guest address space places guest mmaps itself, and Debian 12's
# qemu 7.2 sometimes fails one that carries an address hint (the static musl allocator gives
# 0x4000) with ENOMEM: "memory allocation of 40960 bytes failed" aborted about one kernel-test run
# in three (strace: `mmap(0x4000, 49152, ...) = -1 ENOMEM`). A reserved 64 GiB guest space (address
# space only, nothing committed) makes qemu manage the guest's mappings inside it: 40 of 40 runs
# passed, with one or two test threads.
export QEMU_RESERVED_VA=0x1000000000
cross=(--profile test --quiet --target "$target" -Zbuild-std=std,panic_abort)

check_binary() {
  local bin="$target_dir/$target/debug/glimpse"
  file "$bin"
  file -b "$bin" | grep -q "LoongArch"
  file -b "$bin" | grep -q "statically linked"
  qemu-loongarch64 "$bin" --version
}

# One cargo run builds the binary and both test binaries, so the crates compile side by side.
step loongarch64 "build: binary, kernel and integration tests" \
  cargo test "${cross[@]}" --no-run --lib --test integration
step loongarch64 "binary check" check_binary
test_step loongarch64 "kernel tests under qemu" cargo test "${cross[@]}" --lib kernels
# The parity test needs the real tokenizer (scripts/fetch_tokenizer.sh, run by test.sh).
./scripts/fetch_tokenizer.sh
# Emulated scalar code is slow (all nine conversations of one model: ~2 min), and the scalar
# kernels' parity already ran natively (GLIMPSE_SIMD=scalar): one model, three conversations
# (text, two images of different sizes, an early stop).
test_step loongarch64 "tiny-model parity under qemu" \
  env GLIMPSE_PARITY_CASES=text_only,two_images_text_between,stops_early \
  cargo test "${cross[@]}" --test integration -- model_parity::untied_model_matches_transformers
