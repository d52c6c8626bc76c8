#!/usr/bin/env bash
# glimpse vs llama.cpp, side by side, on this machine: writes this CPU class's section of
# BENCHMARKS.md in the repo root.
#
#   scripts/bench_vs_llamacpp.sh LLAMA_CPP_DIR
#
# LLAMA_CPP_DIR is a llama.cpp source tree at the pinned commit 0c1e57098: a git checkout, or
# vendor/llama.cpp of the PyPI sdist llama-cpp-python==0.3.36 (sha256 832db069...c1a2e), e.g.
#   pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36
#   tar xzf llama_cpp_python-0.3.36.tar.gz; cp -a llama_cpp_python-0.3.36/vendor/llama.cpp DIR
# (not `--no-binary :all:`: that makes pip build cmake from source for the build dependencies).
# Without git metadata the version is checked by a content fingerprint of the source files.
#
# CPU classes (scripts/bench_vs_llamacpp.py class, from lscpu's flags and vendor), one section of
# BENCHMARKS.md each: amx (Intel Xeon with AMX), avx512 (Intel Xeon with AVX-512, no AMX), zen4
# (AMD with AVX-512, family 25: 512-bit work in two halves), zen5 (AMD family 26 on: full-width
# 512-bit units) and avx2 (no AVX-512). A run rewrites its class's section (and the shared
# header) and keeps the other classes' sections and the hand-written notes. BENCH_CLASS=avx2 on a
# CPU with AVX-512 measures the AVX2 path there ("capped"): llama.cpp is built without AVX-512 into
# LLAMA_CPP_DIR/build-avx2 (GGML_NATIVE=OFF, AVX/AVX2/FMA/F16C; AVX-512, AVX-VNNI and AMX off) and
# glimpse runs with GLIMPSE_SIMD=avx2. On a CPU without AVX-512 the class is avx2 natively.
#
# Steps: (a) build llama.cpp (cmake Release, GGML_NATIVE; capped: AVX2 only) into LLAMA_CPP_DIR/build
# (capped: build-avx2) unless built; (b) write the full-size random-weight checkpoint with
# scripts/synth_checkpoint.py unless present;
# (c) convert it with llama.cpp's convert_hf_to_gguf.py (text f32 + f32 mmproj) and quantize to
# Q8_0 and Q4_K_M; (d) cargo build --release, glimpse convert + glimpse quantize (q8_0, q4_k);
# (e) run both tools for f32 / q8_0 / q4_K with the same thread count; (f) measure the streaming
# read bandwidth (scripts/membw.c); (g) write the class's section of BENCHMARKS.md.
#
# Environment:
#   THREADS=N            threads for both tools (default: physical cores)
#   REPS=R               repetitions (llama-bench -r, glimpse --repetitions, server / mtmd runs; default 3)
#   PROFILES="f32 q8_0 q4_K"   which profiles to run
#   BENCH_CLASS=avx2     measure the AVX2 path, capped on a CPU with AVX-512 (default: the CPU's own class)
#   BENCH_MODEL=SIZE     the synthetic model: 2b (default), 4b, 8b or 30b-a3b (the mixture of experts);
#                        another model than 2b gets its own section, keyed CLASS-SIZE
#   BENCH_LAYERS=N       keep the first N text layers (synth_checkpoint.py --layers; every shape stays
#                        real; the section says so) — for a model whose checkpoint would not fit
#   BENCH_WORK=DIR       checkpoint, GGUFs, logs and results (default /work/synth, /work/synth-SIZE[-lN]
#                        for another model)
#   CONVERT_VENV=DIR     Python venv for llama.cpp's converter (torch, transformers; default
#                        $BENCH_WORK/venv, created from llama.cpp's requirements if missing)
#   LLAMA_BUILD_DIR=DIR  llama.cpp build dir (default LLAMA_CPP_DIR/build; capped: LLAMA_CPP_DIR/build-avx2)
#   LLAMA_CC / LLAMA_CXX compilers for llama.cpp (default cc / c++)
#   LLAMA_AMX=off        build llama.cpp without its AMX kernels (default auto: on where the CPU has AMX)
#   LLAMA_CPP_ALLOW_OTHER=1   run with a llama.cpp that is not the pinned commit
#   SKIP_LLAMA=1 / SKIP_GLIMPSE=1 / SKIP_GLIMPSE_BUILD=1   leave out one side / the cargo build
#   FORCE_CONVERT=1      redo the conversions even if the GGUF files exist
#   PREPARE_ONLY=1       stop after the builds, conversions and the bandwidth probe (nothing is run)
#   BENCH_DRAFT=1        mark the section as a draft (e.g. measured while other work runs)
#   BENCH_OUT=FILE       report path (default REPO/BENCHMARKS.md)
#   GLIMPSE_BIN=FILE     glimpse binary (default REPO/target/release/glimpse)
#
# AMX: on CPUs with AMX, llama.cpp's GGML_NATIVE build compiles its AMX kernels (ggml checks the
# GCC macro spelling __AMX_INT8__; clang 14 defines __AMXINT8__, so a clang 14 build has none).
# GCC 12 (Debian 12) miscompiles _tile_loadconfig: its asm operand covers 8 of the 64 bytes, the
# stores filling the tile configuration are dropped, and every AMX kernel dies with SIGILL. The
# script tests the compiler first and, if it is affected, force-includes
# scripts/amx_ldtilecfg_fix.h (the same instruction with a 64-byte operand; no source change).
set -euo pipefail

# shellcheck source=scripts/llamacpp_pin.sh
source "$(dirname "$0")/llamacpp_pin.sh"

die() { echo "bench_vs_llamacpp: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

[ $# -eq 1 ] || die "usage: $0 LLAMA_CPP_DIR"
{ [ -f "$1/convert_hf_to_gguf.py" ] && [ -f "$1/CMakeLists.txt" ]; } || die "$1 is not a llama.cpp source tree"
LLAMA_DIR=$(cd "$1" && pwd)
REPO=$(cd "$(dirname "$0")/.." && pwd)
HELPER="$REPO/scripts/bench_vs_llamacpp.py"
MODEL=${BENCH_MODEL:-2b}
LAYERS=${BENCH_LAYERS:-}
case "$MODEL" in 2b|4b|8b|30b-a3b) ;; *) die "BENCH_MODEL must be 2b, 4b, 8b or 30b-a3b, not '$MODEL'" ;; esac
if [ "$MODEL" = 2b ] && [ -z "$LAYERS" ]; then
  WORK=${BENCH_WORK:-/work/synth}
else
  WORK=${BENCH_WORK:-/work/synth-$MODEL${LAYERS:+-l$LAYERS}}
fi
VENV=${CONVERT_VENV:-$WORK/venv}
REPS=${REPS:-3}
PROFILES=${PROFILES:-"f32 q8_0 q4_K"}
OUT=${BENCH_OUT:-$REPO/BENCHMARKS.md}
CKPT="$WORK/qwen3-vl-$MODEL"
# The file the llama.cpp quantizations start from: f32 when f32 is measured, else bf16 (the
# checkpoint's own type; half the disk of f32 for the large models).
case " $PROFILES " in *" f32 "*) LLAMA_BASE=f32 ;; *) LLAMA_BASE=bf16 ;; esac
GGUF="$WORK/gguf"
if [ -z "${THREADS:-}" ]; then
  THREADS=$(lscpu -p=core,socket 2>/dev/null | grep -v '^#' | sort -u | wc -l)
  [ "$THREADS" -ge 1 ] 2>/dev/null || THREADS=$(nproc)
fi
mkdir -p "$WORK" "$GGUF" "$WORK/bin" "$WORK/logs"
command -v python3 >/dev/null || die "python3 is needed"
cls=$(python3 "$HELPER" class "${BENCH_CLASS:-}") || exit 1
read -r CLASS CLASS_MODE <<< "$cls"
if [ "$CLASS_MODE" = capped ]; then
  BUILD=${LLAMA_BUILD_DIR:-$LLAMA_DIR/build-avx2}
  ggml_native=OFF
  arch_flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF
              -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
else
  BUILD=${LLAMA_BUILD_DIR:-$LLAMA_DIR/build}
  ggml_native=ON
  arch_flags=(-DGGML_NATIVE=ON)
fi
say "CPU class $CLASS ($CLASS_MODE), llama.cpp build dir $BUILD"
as_root() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

# --- pin ---------------------------------------------------------------------------------------
say "checking the llama.cpp version in $LLAMA_DIR"
check_llamacpp_version "$LLAMA_DIR"
echo "llama.cpp: git HEAD ${git_commit:-none (no git metadata)}, source fingerprint $fp" >&2
echo "llama.cpp: $LLAMA_VERSION" >&2

# --- (a) build llama.cpp ------------------------------------------------------------------------
amx_test_src='
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <immintrin.h>
typedef struct { unsigned char palette_id, start_row, reserved[14]; unsigned short colsb[16]; unsigned char rows[16]; } tc_t;
__attribute__((noinline)) static void cfg(void) { _Alignas(64) tc_t tc; memset(&tc, 0, sizeof tc);
  tc.palette_id = 1; tc.rows[0] = 8; tc.colsb[0] = 64; _tile_loadconfig(&tc); }
unsigned char out[64];
int main(void) { if (syscall(SYS_arch_prctl, 0x1023, 18)) return 3; cfg();
  _tile_storeconfig(out); _tile_zero(0); _tile_release();
  return !(out[0] == 1 && out[16] == 64 && out[48] == 8); }'
amx_ok() {  # amx_ok CC [FLAGS...]: does CC -O3 -march=native compile a working tile configuration?
  local d; d=$(mktemp -d)
  printf '%s\n' "$amx_test_src" > "$d/t.c"
  local ok=1
  if "$@" -O3 -march=native "$d/t.c" -o "$d/t" 2>/dev/null && bash -c 'cd "$1" && ./t' _ "$d" >/dev/null 2>&1; then ok=0; fi
  rm -rf "$d"
  return $ok
}

bins="llama-bench llama-mtmd-cli llama-server llama-quantize"
built=1
for b in $bins; do [ -x "$BUILD/bin/$b" ] || built=0; done
if [ "${SKIP_LLAMA:-0}" != 1 ] && [ $built = 0 ]; then
  command -v cmake >/dev/null || { as_root && apt-get install -y cmake >/dev/null; } || die "cmake is needed"
  CC_=${LLAMA_CC:-cc}; CXX_=${LLAMA_CXX:-c++}; amx_flags=""
  if [ "$ggml_native" = OFF ]; then
    :  # no -march=native: no AMX code
  elif [ "${LLAMA_AMX:-auto}" = off ]; then
    amx_flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  elif [ "$CLASS" = amx ] && ! amx_ok "$CC_"; then
    if amx_ok "$CC_" -include "$REPO/scripts/amx_ldtilecfg_fix.h"; then
      echo "$CC_ miscompiles _tile_loadconfig: force-including scripts/amx_ldtilecfg_fix.h" >&2
      amx_flags="-include $REPO/scripts/amx_ldtilecfg_fix.h"
    else
      echo "$CC_ cannot build working AMX code: building llama.cpp with AMX off" >&2
      amx_flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    fi
  fi
  commit_flag=()
  [ -n "$git_commit" ] || commit_flag=(-DLLAMA_BUILD_COMMIT="$PINNED_COMMIT")
  say "building llama.cpp into $BUILD ($CC_, $CXX_)"
  cmake -S "$LLAMA_DIR" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$CC_" -DCMAKE_CXX_COMPILER="$CXX_" \
    "${arch_flags[@]}" -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DCMAKE_C_FLAGS="$amx_flags" -DCMAKE_CXX_FLAGS="$amx_flags" \
    "${commit_flag[@]}" \
    > "$WORK/logs/llama-cmake.log" 2>&1 || die "cmake configure failed, see $WORK/logs/llama-cmake.log"
  # shellcheck disable=SC2086
  cmake --build "$BUILD" --config Release -j"$(nproc)" --target $bins > "$WORK/logs/llama-build.log" 2>&1 \
    || die "llama.cpp build failed, see $WORK/logs/llama-build.log"
fi
LB="$BUILD/bin"
llama_build_desc="not built"
cache_val() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt" 2>/dev/null | head -n1; }
if [ -x "$LB/llama-bench" ]; then
  [ "$(cache_val GGML_NATIVE)" = "$ggml_native" ] \
    || die "$BUILD has GGML_NATIVE=$(cache_val GGML_NATIVE), $CLASS ($CLASS_MODE) needs $ggml_native: remove it or set LLAMA_BUILD_DIR"
  cxx=$(cache_val CMAKE_CXX_COMPILER)
  cflags=$(cache_val CMAKE_C_FLAGS)
  amx="no AMX kernels"
  syms=$(nm -D --defined-only "$LB"/libggml-cpu.so 2>/dev/null || true)
  if [[ "$syms" == *ggml_backend_amx_mul_mat* ]]; then amx="AMX kernels built"; fi
  [[ "$cflags" == *amx_ldtilecfg_fix* ]] && amx="$amx (with scripts/amx_ldtilecfg_fix.h)"
  [[ "$cflags" == *mno-amx* ]] && amx="$amx (-mno-amx-*)"
  llama_build_desc="$("$LB/llama-bench" --version 2>&1 | head -n1); $("${cxx:-c++}" --version 2>/dev/null | head -n1), Release, GGML_NATIVE=$ggml_native, $amx"
  echo "llama.cpp build: $llama_build_desc" >&2
fi

# --- (b) synthetic checkpoint --------------------------------------------------------------------
need_venv() {
  if "$VENV/bin/python" -c "import torch, transformers, numpy, sentencepiece, google.protobuf" 2>/dev/null; then return; fi
  say "creating the converter venv $VENV (torch, transformers from llama.cpp's requirements)"
  python3 -m venv "$VENV"
  reqs=$(cat "$LLAMA_DIR"/requirements/requirements-convert_hf_to_gguf.txt "$LLAMA_DIR"/requirements/requirements-convert_legacy_llama.txt \
         | sed 's/#.*//' | grep -v -e '^-' -e '^gguf' -e '^ *$' || true)
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet $reqs pyyaml tqdm safetensors > "$WORK/logs/venv.log" 2>&1 \
    || die "pip install failed, see $WORK/logs/venv.log"
}
if [ ! -s "$CKPT/model.safetensors" ] && [ ! -s "$CKPT/model.safetensors.index.json" ]; then
  need_venv
  say "writing the random-weight checkpoint $CKPT"
  "$VENV/bin/python" "$REPO/scripts/synth_checkpoint.py" "$CKPT" --seed 0 --size "$MODEL" ${LAYERS:+--layers "$LAYERS"}
fi

# --- (c) llama.cpp conversion ----------------------------------------------------------------------
fresh() { [ "${FORCE_CONVERT:-0}" != 1 ] && [ -s "$1" ]; }
if [ "${SKIP_LLAMA:-0}" != 1 ]; then
  conv="$LLAMA_DIR/convert_hf_to_gguf.py"
  base="$GGUF/llamacpp-text-$LLAMA_BASE.gguf"
  if ! fresh "$base"; then
    need_venv; say "llama.cpp convert: text $LLAMA_BASE"
    "$VENV/bin/python" "$conv" "$CKPT" --outtype "$LLAMA_BASE" --outfile "$base" > "$WORK/logs/llama-convert-text.log" 2>&1 \
      || die "conversion failed, see $WORK/logs/llama-convert-text.log"
  fi
  if ! fresh "$GGUF/llamacpp-mmproj-f32.gguf"; then
    need_venv; say "llama.cpp convert: mmproj f32"
    "$VENV/bin/python" "$conv" "$CKPT" --mmproj --outtype f32 --outfile "$GGUF/llamacpp-mmproj-f32.gguf" > "$WORK/logs/llama-convert-mmproj.log" 2>&1 \
      || die "mmproj conversion failed, see $WORK/logs/llama-convert-mmproj.log"
  fi
  for q in q8_0:Q8_0 q4_k_m:Q4_K_M; do
    prof=${q%%:*}; [ "$prof" = q4_k_m ] && prof=q4_K
    [[ " $PROFILES " == *" $prof "* ]] || continue
    if ! fresh "$GGUF/llamacpp-text-${q%%:*}.gguf" || [ "$base" -nt "$GGUF/llamacpp-text-${q%%:*}.gguf" ]; then
      say "llama-quantize ${q#*:}"
      "$LB/llama-quantize" "$base" "$GGUF/llamacpp-text-${q%%:*}.gguf" "${q#*:}" "$(nproc)" \
        > "$WORK/logs/llama-quantize-${q%%:*}.log" 2>&1 || die "llama-quantize failed, see $WORK/logs/llama-quantize-${q%%:*}.log"
    fi
  done
fi

# --- (d) glimpse build + conversion ------------------------------------------------------------------
G=${GLIMPSE_BIN:-$REPO/target/release/glimpse}
glimpse_error=""
glimpse_desc="not run"
if [ "${SKIP_GLIMPSE:-0}" != 1 ]; then
  if [ "${SKIP_GLIMPSE_BUILD:-0}" != 1 ]; then
    say "cargo build --release"
    (cd "$REPO" && cargo build --release) > "$WORK/logs/cargo-build.log" 2>&1 || die "cargo build --release failed, see $WORK/logs/cargo-build.log"
  fi
  [ -x "$G" ] || die "$G is missing (cargo build --release)"
  gcommit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$REPO" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || gcommit="$gcommit + uncommitted changes"
  simd_cap=()  # a capped run reports the SIMD path it measures, not the CPU's best
  [ "$CLASS_MODE" = capped ] && simd_cap=(env GLIMPSE_SIMD=avx2)
  glimpse_desc="git $gcommit, $("${simd_cap[@]}" "$G" --version 2>/dev/null | head -n1 || true)"
  if ! "$G" bench --help > /dev/null 2>&1; then
    glimpse_error="glimpse has no 'bench' subcommand ($G bench --help fails); the glimpse columns are empty"
    echo "ERROR: $glimpse_error" >&2
  else
    if [ "$LLAMA_BASE" = f32 ]; then
      if ! fresh "$GGUF/glimpse-f32.gguf" || [ "$G" -nt "$GGUF/glimpse-f32.gguf" ]; then
        say "glimpse convert (f32)"
        "$G" convert "$CKPT" -o "$GGUF/glimpse-f32.gguf" --quiet > "$WORK/logs/glimpse-convert.log" 2>&1 \
          || die "glimpse convert failed, see $WORK/logs/glimpse-convert.log"
      fi
      for q in q8_0 q4_k; do
        if ! fresh "$GGUF/glimpse-$q.gguf" || [ "$GGUF/glimpse-f32.gguf" -nt "$GGUF/glimpse-$q.gguf" ]; then
          say "glimpse quantize $q"
          "$G" quantize "$GGUF/glimpse-f32.gguf" "$GGUF/glimpse-$q.gguf" --type "$q" > "$WORK/logs/glimpse-quantize-$q.log" 2>&1 \
            || die "glimpse quantize failed, see $WORK/logs/glimpse-quantize-$q.log"
        fi
      done
    else
      # Without f32 in the profiles, each profile straight from the checkpoint (no f32 file).
      for q in q8_0 q4_k; do
        [[ " ${PROFILES,,} " == *" $q "* ]] || continue
        if ! fresh "$GGUF/glimpse-$q.gguf" || [ "$G" -nt "$GGUF/glimpse-$q.gguf" ]; then
          say "glimpse convert ($q)"
          "$G" convert "$CKPT" --type "$q" -o "$GGUF/glimpse-$q.gguf" --quiet > "$WORK/logs/glimpse-convert-$q.log" 2>&1 \
            || die "glimpse convert failed, see $WORK/logs/glimpse-convert-$q.log"
        fi
      done
    fi
  fi
fi

# --- (f) bandwidth probe -----------------------------------------------------------------------------
MEMBW="$WORK/bin/membw"
if [ ! -x "$MEMBW" ] || [ "$REPO/scripts/membw.c" -nt "$MEMBW" ]; then
  gcc -O3 -march=native -ffast-math -fopenmp "$REPO/scripts/membw.c" -o "$MEMBW" || die "cannot compile scripts/membw.c"
fi

if [ "${PREPARE_ONLY:-0}" = 1 ]; then say "prepared (PREPARE_ONLY=1): nothing run"; exit 0; fi

# --- (e) + (g) run and report ---------------------------------------------------------------------------
python3 "$HELPER" png "$WORK/image448.png"
cfg="$WORK/logs/run-config.json"
LLAMA_VERSION="$LLAMA_VERSION; $llama_build_desc" GLIMPSE_DESC="$glimpse_desc" GLIMPSE_ERROR="$glimpse_error" \
python3 - "$cfg" <<EOF
import json, os, sys
json.dump({
  "llama_bin": "$LB", "gguf_dir": "$GGUF", "work": "$WORK", "image": "$WORK/image448.png",
  "glimpse": "$G", "membw": "$MEMBW", "threads": $THREADS, "reps": $REPS,
  "prompt_tokens": 512, "gen_tokens": 128, "answer_tokens": 16, "seed": 0,
  "profiles": "$PROFILES".split(), "out": "$OUT", "class": "$CLASS", "capped": "$CLASS_MODE" == "capped",
  "model": "$MODEL", "layers": int("${LAYERS:-0}") or None,
  "skip_llama": "${SKIP_LLAMA:-0}" == "1",
  "glimpse_error": os.environ["GLIMPSE_ERROR"] or ("glimpse skipped (SKIP_GLIMPSE=1)" if "${SKIP_GLIMPSE:-0}" == "1" else ""),
  "draft": "${BENCH_DRAFT:-0}" == "1",
  "versions": {"llama_cpp": os.environ["LLAMA_VERSION"], "glimpse": os.environ["GLIMPSE_DESC"]},
}, open(sys.argv[1], "w"), indent=2)
EOF
say "running (threads $THREADS, repetitions $REPS, profiles $PROFILES)"
python3 "$HELPER" run --config "$cfg"
