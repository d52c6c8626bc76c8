# Shared by scripts/test.sh, browser_test.sh and cross_*.sh (sourced): the build cache that
# outlives a checkout, installing what a check lacks, and timing and counting its steps.

# The cache: cargo target dirs, the installed tool venvs and the fetched tokenizer, outside the
# checkout so that a fresh clone on a machine that ran the suite before rebuilds only what
# changed. Cargo's fingerprints decide what is stale. One target dir, `host`, holds the host
# build, the lite build and the musl, Windows and aarch64 builds (each under its target triple):
# they share the compiled build scripts and proc macros (README "Run the tests" has the measured
# effect). LoongArch64 has its own (see cross_loongarch64.sh). GLIMPSE_CI_CACHE moves it;
# deleting it gives a cold run.
export GLIMPSE_CI_CACHE="${GLIMPSE_CI_CACHE:-$HOME/.cache/glimpse-ci}"
mkdir -p "$GLIMPSE_CI_CACHE"

# `use_target_dir NAME`: cargo builds go to $GLIMPSE_CI_CACHE/NAME from here on. Files the
# tests of an earlier run left in its tmp/ (CARGO_TARGET_TMPDIR) are removed.
use_target_dir() {
  export CARGO_TARGET_DIR="$GLIMPSE_CI_CACHE/$1"
  rm -rf "$CARGO_TARGET_DIR/tmp"
}

# `record LABEL NAME SECONDS TESTS`: one line of the summary test.sh prints at its end
# (GLIMPSE_TEST_SUMMARY, a file test.sh creates; a script run by itself records nothing).
record() {
  [ -z "${GLIMPSE_TEST_SUMMARY:-}" ] || printf '%s\t%s\t%s\t%s\n' "$@" >>"$GLIMPSE_TEST_SUMMARY"
}

# `step LABEL NAME COMMAND...`: runs COMMAND, printing its name and wall time.
step() {
  local label=$1 name=$2 start=$SECONDS
  shift 2
  echo "== $label: $name"
  "$@"
  echo "== $label: $name took $((SECONDS - start)) s"
  record "$label" "$name" "$((SECONDS - start))" "-"
}

# `test_step LABEL NAME COMMAND...`: a `step` whose COMMAND runs tests; the number of tests
# it executed (see count_tests) is printed and recorded.
test_step() {
  local label=$1 name=$2 start=$SECONDS log count
  shift 2
  log=$(mktemp)
  echo "== $label: $name"
  "$@" 2>&1 | tee "$log"
  count=$(count_tests "$log")
  rm -f "$log"
  echo "== $label: $name took $((SECONDS - start)) s, $count tests executed"
  record "$label" "$name" "$((SECONDS - start))" "$count"
}

# `count_tests LOG`: tests executed (passed + failed; ignored and filtered-out ones are not)
# according to the runners' closing lines in LOG: cargo's `test result:` lines, node --test's
# TAP `# pass N` / `# fail N`, Python unittest's `Ran N tests`, and the plain `N passed, N failed`
# the browser test prints.
count_tests() {
  awk '
    /^test result: / {
      for (i = 1; i < NF; i++) if ($(i + 1) ~ /^(passed|failed);?$/) n += $i
    }
    /^# (pass|fail) [0-9]+$/ { n += $3 }
    /^Ran [0-9]+ tests? in / { n += $2 }
    /^([a-z]+: )?[0-9]+ passed, [0-9]+ failed/ {
      sub(/^[a-z]+: /, ""); n += $1; n += $3
    }
    END { print n + 0 }' "$1"
}

# `print_summary`: every recorded step with its time and test count, the total wall time,
# and the tests executed in all as one closing line.
print_summary() {
  [ -n "${GLIMPSE_TEST_SUMMARY:-}" ] || return 0
  echo "== summary: step, seconds, tests executed"
  awk -F'\t' '{ printf "%-12s %-48s %6d s %8s\n", $1, $2, $3, $4 }' "$GLIMPSE_TEST_SUMMARY"
  awk -F'\t' -v wall="$SECONDS" '
    $4 != "-" { n += $4 }
    END { printf "== all steps: %d s (%.1f min)\ntests: %d passed, 0 failed\n", wall, wall / 60, n }
  ' "$GLIMPSE_TEST_SUMMARY"
}

# `ensure_packages COMMAND:PACKAGE...`: apt-get installs each PACKAGE whose COMMAND is
# missing (COMMAND may also be a file path that must exist).
ensure_packages() {
  local missing=() pair
  for pair in "$@"; do
    local probe=${pair%%:*} package=${pair#*:}
    if [[ $probe == /* ]]; then
      [ -e "$probe" ] || missing+=("$package")
    else
      command -v "$probe" >/dev/null || missing+=("$package")
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# `ensure_rust_target TRIPLE...`: rustup target add for the triples not installed yet.
ensure_rust_target() {
  local installed missing=() triple
  installed=$(rustup target list --installed)
  for triple in "$@"; do
    grep -qx "$triple" <<<"$installed" || missing+=("$triple")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    rustup target add "${missing[@]}"
  fi
}

# What each check installs when missing: apt packages (COMMAND:PACKAGE pairs for
# ensure_packages) and Rust targets. Each script installs its own; test.sh installs them all
# first, with one apt-get and one rustup run (see install_everything).
MUSL_TARGET=x86_64-unknown-linux-musl
WINDOWS_TARGET=x86_64-pc-windows-gnu
AARCH64_TARGET=aarch64-unknown-linux-gnu
BROWSER_PACKAGES=(/usr/bin/chromium:chromium)
# ffmpeg decodes video containers (MP4, WebM, …) for `--video` and the API's video parts.
VIDEO_PACKAGES=(ffmpeg:ffmpeg ffprobe:ffmpeg)
MUSL_PACKAGES=(musl-gcc:musl-tools file:file)
WINDOWS_PACKAGES=(x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64 x86_64-w64-mingw32-g++:g++-mingw-w64-x86-64 file:file)
AARCH64_PACKAGES=(aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu aarch64-linux-gnu-g++:g++-aarch64-linux-gnu
  /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1:libc6-dev-arm64-cross qemu-aarch64:qemu-user file:file)
LOONGARCH64_PACKAGES=(qemu-loongarch64:qemu-user file:file /usr/share/doc/python3-venv:python3-venv)

# `ensure_rust_src`: the standard library's source (LoongArch64's -Zbuild-std).
ensure_rust_src() {
  if ! rustup component list --installed | grep -qx "rust-src"; then
    rustup component add rust-src
  fi
}

# `install_everything`: on an x86_64 host (where every check runs), what all the checks need,
# in one go; elsewhere each script installs its own.
install_everything() {
  [ "$(uname -m)" = x86_64 ] || return 0
  ensure_packages "${BROWSER_PACKAGES[@]}" "${VIDEO_PACKAGES[@]}" "${MUSL_PACKAGES[@]}" "${WINDOWS_PACKAGES[@]}" \
    "${AARCH64_PACKAGES[@]}" "${LOONGARCH64_PACKAGES[@]}"
  ensure_rust_target "$MUSL_TARGET" "$WINDOWS_TARGET" "$AARCH64_TARGET"
  ensure_rust_src
}
