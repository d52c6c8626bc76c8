# Sourced by the scripts that run llama.cpp (bench_vs_llamacpp.sh, make_llamacpp_pair.sh): the
# llama.cpp version glimpse is compared with, and the check that a source tree is that version.
# Without git metadata (the PyPI sdist's vendor/llama.cpp) the version is recognised by a content
# fingerprint of the source files (scripts/bench_vs_llamacpp.py fingerprint).

PINNED_COMMIT=0c1e57098
PINNED_FINGERPRINT=78c11d66f73df551e4bbc89f48a56e190ca1f967796aed9e2dc77b3fdaac479d
PINNED_DESC="llama.cpp commit $PINNED_COMMIT (as vendored in llama-cpp-python 0.3.36)"

# check_llamacpp_version LLAMA_DIR: sets git_commit (empty without git metadata), fp (the source
# fingerprint) and LLAMA_VERSION (a description for reports); calls the caller's `die` unless the
# tree is the pinned version or LLAMA_CPP_ALLOW_OTHER=1.
check_llamacpp_version() {
  local dir=$1 top
  git_commit=""
  if top=$(git -C "$dir" rev-parse --show-toplevel 2>/dev/null) && [ "$top" = "$dir" ]; then
    git_commit=$(git -C "$dir" rev-parse HEAD)
  fi
  fp=$(python3 "$(dirname "${BASH_SOURCE[0]}")/bench_vs_llamacpp.py" fingerprint "$dir")
  if [[ -n "$git_commit" && "$git_commit" == "$PINNED_COMMIT"* ]]; then
    LLAMA_VERSION="$PINNED_DESC, git checkout"
  elif [ "$fp" = "$PINNED_FINGERPRINT" ]; then
    LLAMA_VERSION="$PINNED_DESC; source fingerprint $fp matches"
  elif [ "${LLAMA_CPP_ALLOW_OTHER:-0}" = 1 ]; then
    LLAMA_VERSION="NOT the pinned commit: git ${git_commit:-none}, source fingerprint $fp"
    echo "warning: $LLAMA_VERSION (LLAMA_CPP_ALLOW_OTHER=1)" >&2
  else
    die "$dir is not $PINNED_DESC (git ${git_commit:-none}, fingerprint $fp != $PINNED_FINGERPRINT); set LLAMA_CPP_ALLOW_OTHER=1 to run anyway"
  fi
}
