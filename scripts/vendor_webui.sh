#!/usr/bin/env bash
# Refreshes the web chat's vendored libraries in webui/vendor/ from npm (KaTeX for formulas,
# highlight.js for code blocks). The files are committed: the binary embeds them and the page
# never loads anything from a CDN. Run by hand when bumping a version; `npm pack` checks each
# tarball against the registry's integrity hash.
set -euo pipefail
cd "$(dirname "$0")/.."

KATEX=0.19.1
HIGHLIGHT=11.12.0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "katex@$KATEX" "@highlightjs/cdn-assets@$HIGHLIGHT" >/dev/null)
mkdir "$work/katex" "$work/highlight"
tar xzf "$work/katex-$KATEX.tgz" -C "$work/katex"
tar xzf "$work/highlightjs-cdn-assets-$HIGHLIGHT.tgz" -C "$work/highlight"

rm -rf webui/vendor
katex=webui/vendor/katex-$KATEX
highlight=webui/vendor/highlight-$HIGHLIGHT
mkdir -p "$katex/fonts" "$highlight"
# KaTeX: the UMD build (it sets self.katex, also when loaded by import()), its stylesheet and
# the woff2 fonts (every browser that runs the page's modules reads woff2, listed first in the CSS).
cp "$work/katex/package/dist/katex.min.js" "$work/katex/package/dist/katex.min.css" "$katex/"
cp "$work/katex/package/dist/fonts/"*.woff2 "$katex/fonts/"
cp "$work/katex/package/LICENSE" "$katex/LICENSE"
# highlight.js: the ES module build with its common languages, and the GitHub light/dark themes.
cp "$work/highlight/package/es/highlight.min.js" "$highlight/"
cp "$work/highlight/package/styles/github.min.css" "$highlight/"
cp "$work/highlight/package/styles/github-dark.min.css" "$highlight/"
cp "$work/highlight/package/LICENSE" "$highlight/LICENSE"
echo "webui/vendor: katex $KATEX, highlight.js $HIGHLIGHT"
