#!/usr/bin/env bash
# Browser test of the web chat page: installs Debian's chromium and the npm harness
# (tests/browser, playwright-core) when missing, builds glimpse, converts the tiny fixture model,
# starts `glimpse serve --port 0 --api-key …` and drives the page in headless Chromium.
# Screenshots go to target/browser-screenshots/ in the checkout (the one scripts/test.sh was
# started from, not its mirror in the cache). Builds into the test cache's host target dir
# (scripts/cross_common.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross_common.sh
use_target_dir host
export SCREENSHOT_DIR="${SCREENSHOT_DIR:-${GLIMPSE_TEST_CHECKOUT:-$PWD}/target/browser-screenshots}"

ensure_packages "${BROWSER_PACKAGES[@]}"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

./scripts/fetch_tokenizer.sh
# The test profile: the binary `cargo test` built (and an optimized one).
cargo build --quiet --profile test --bin glimpse
glimpse="$CARGO_TARGET_DIR/debug/glimpse"
mkdir "$work/model"
cp tests/fixtures/tiny-untied/checkpoint/* tests/fixtures/tokenizer/tokenizer.json "$work/model/"
"$glimpse" convert --quiet "$work/model" -o "$work/model.gguf" >/dev/null

# A 3 s VP8 clip for the video attachment (Chromium plays WebM/VP8; ffmpeg is in VIDEO_PACKAGES).
ensure_packages "${VIDEO_PACKAGES[@]}"
ffmpeg -v error -f lavfi -i testsrc=size=160x120:rate=10:duration=3 -c:v libvpx -b:v 200k "$work/clip.webm"

api_key="browser-test-key"
# --image-max-tokens 1024: a budget of 1024 × 32² pixels, which the page reads from /v1/models
# and downscales larger images to (chat_page.test.mjs checks the size it sends).
"$glimpse" serve -m "$work/model.gguf" --host 127.0.0.1 --port 0 --api-key "$api_key" \
  --image-max-tokens 1024 2>"$work/server.log" &
server_pid=$!

url=""
for _ in $(seq 600); do
  url=$(sed -n 's|.*glimpse listening on \(http://[^ ]*\).*|\1|p' "$work/server.log" | head -n 1)
  [ -n "$url" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$work/server.log" >&2
    echo "browser_test: the server exited before it was listening" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$url" ]; then
  cat "$work/server.log" >&2
  echo "browser_test: the server did not print 'glimpse listening on …' within 60 s" >&2
  exit 1
fi

if ! GLIMPSE_URL="${url%/}/" GLIMPSE_API_KEY="$api_key" VIDEO_FILE="$work/clip.webm" node tests/browser/chat_page.test.mjs; then
  echo "--- last lines of the server log" >&2
  tail -n 40 "$work/server.log" >&2
  exit 1
fi
