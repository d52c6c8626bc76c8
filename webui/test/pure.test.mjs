// The modules the unit tests import are pure: they touch no DOM or browser state and import
// only each other, so they behave the same in Node and in the page.
// Run: node --test webui/test/*.test.mjs
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';

const PURE = ['markdown.js', 'grounding.js', 'messages.js', 'presets.js', 'transfer.js', 'format.js'];
const BROWSER = /\b(document|window|navigator|localStorage|sessionStorage|indexedDB|fetch|innerHTML|requestAnimationFrame|setTimeout)\b/;

for (const file of PURE) {
  it(`${file} uses no browser globals and imports only pure modules`, () => {
    const source = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
    for (const [, imported] of source.matchAll(/from '\.\/([^']+)'/g)) assert.ok(PURE.includes(imported), `${file} imports ${imported}`);
    // Comments and prompt texts may name such things ("the document in the image").
    const code = source.replace(/^\s*\/\/.*$/gm, '').replace(/'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"/g, "''");
    assert.doesNotMatch(code, BROWSER);
  });
}
