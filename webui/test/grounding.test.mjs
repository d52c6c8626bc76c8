// Unit tests of the page's grounding logic (webui/grounding.js): checking the server's
// `glimpse.detections`, collecting them as an answer streams in, finding their JSON in the
// answer, colours and shapes. (The bbox_2d / point_2d JSON itself is parsed by the server,
// src/grounding/parse.rs, and tested there.)
// Run: node --test webui/test/*.test.mjs
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import {
  cleanDetection, cleanDetections, detectionShape, detectionSnippets, imagesBefore, labelColours, PALETTE,
} from '../grounding.js';
import { parseMarkdown } from '../markdown.js';
import { applyChunk } from '../messages.js';

// The server's answer for a 400×300 image, shared with tests/grounding.rs and the browser test.
const FIXTURE = JSON.parse(readFileSync(new URL('../../tests/fixtures/grounding/answer.json', import.meta.url), 'utf8'));

describe('cleanDetection', () => {
  it('keeps a box with its label and span', () => {
    assert.deepEqual(cleanDetection({ image: 0, label: 'cat', bbox: [1, 2, 30, 40], span: [5, 60], extra: 'dropped' }),
      { image: 0, label: 'cat', bbox: [1, 2, 30, 40], span: [5, 60] });
  });

  it('keeps a point', () => {
    assert.deepEqual(cleanDetection({ image: 2, label: 'eye', point: [12.5, 7] }), { image: 2, label: 'eye', point: [12.5, 7] });
  });

  it('prefers the box when an entry has both, and falls back to the point when the box is bad', () => {
    assert.deepEqual(cleanDetection({ image: 0, bbox: [1, 2, 3, 4], point: [5, 6] }), { image: 0, label: '', bbox: [1, 2, 3, 4] });
    assert.deepEqual(cleanDetection({ image: 0, bbox: [1, 2, 3], point: [5, 6] }), { image: 0, label: '', point: [5, 6] });
  });

  it('rejects malformed entries', () => {
    const bad = [
      null, undefined, 'box', 42, [],
      { label: 'no image', bbox: [1, 2, 3, 4] },
      { image: -1, bbox: [1, 2, 3, 4] },
      { image: 0.5, bbox: [1, 2, 3, 4] },
      { image: 'first', bbox: [1, 2, 3, 4] },
      { image: 0 },
      { image: 0, bbox: [1, 2, 3] },
      { image: 0, bbox: [1, 2, 3, 4, 5] },
      { image: 0, bbox: [1, -2, 3, 4] },
      { image: 0, bbox: [1, 2, NaN, 4] },
      { image: 0, bbox: [1, 2, Infinity, 4] },
      { image: 0, bbox: ['1', '2', '3', '4'] },
      { image: 0, bbox: { x1: 1, y1: 2, x2: 3, y2: 4 } },
      { image: 0, point: [1] },
      { image: 0, point: [1, null] },
      { image: 0, bbox_2d: [1, 2, 3, 4] }, // the model's JSON, not the server's detection
    ];
    for (const raw of bad) assert.equal(cleanDetection(raw), null, JSON.stringify(raw));
  });

  it('drops a bad span or label but keeps the detection', () => {
    assert.deepEqual(cleanDetection({ image: 0, label: 7, point: [1, 2], span: [3] }), { image: 0, label: '', point: [1, 2] });
    assert.deepEqual(cleanDetection({ image: 0, label: null, point: [1, 2], span: [-1, 4] }), { image: 0, label: '', point: [1, 2] });
  });

  it('copies the coordinate lists', () => {
    const raw = { image: 0, bbox: [1, 2, 3, 4], span: [0, 1] };
    const clean = cleanDetection(raw);
    raw.bbox[0] = 99;
    raw.span[1] = 99;
    assert.deepEqual([clean.bbox, clean.span], [[1, 2, 3, 4], [0, 1]]);
  });

  it('cleanDetections skips the bad entries of a list and accepts only lists', () => {
    const list = [{ image: 0, point: [1, 2] }, { image: 0, bbox: [1] }, null, { image: 1, bbox: [0, 0, 5, 5], label: 'b' }];
    assert.deepEqual(cleanDetections(list), [{ image: 0, label: '', point: [1, 2] }, { image: 1, label: 'b', bbox: [0, 0, 5, 5] }]);
    for (const notList of [undefined, null, {}, 'x', { 0: { image: 0, point: [1, 2] } }]) assert.deepEqual(cleanDetections(notList), []);
  });

  it('accepts the server fixture unchanged', () => {
    assert.deepEqual(cleanDetections(FIXTURE.glimpse.detections), FIXTURE.glimpse.detections);
  });
});

describe('detections while an answer streams', () => {
  // The fixture answer in 37-character chunks, each detection on the chunk that completes its
  // text, as the server sends them (and as the browser test replays them).
  function chunks() {
    const pieces = FIXTURE.text.match(/[\s\S]{1,37}/g);
    let sent = 0;
    return pieces.map((content) => {
      const before = sent;
      sent += Array.from(content).length;
      const done = FIXTURE.glimpse.detections.filter((d) => d.span[1] > before && d.span[1] <= sent);
      return { choices: [{ index: 0, delta: { content } }], ...(done.length ? { glimpse: { detections: done } } : {}) };
    });
  }

  it('adds each detection when its JSON is complete, in order', () => {
    const message = { role: 'assistant', text: '' };
    const seen = [];
    for (const chunk of chunks()) {
      applyChunk(message, chunk);
      seen.push((message.detections || []).length);
      // Only complete entries: every detection's span lies within the text received so far.
      for (const d of message.detections || []) assert.ok(d.span[1] <= Array.from(message.text).length);
    }
    assert.equal(message.text, FIXTURE.text);
    assert.deepEqual(message.detections.map((d) => d.label), ['left block', 'right block']);
    assert.deepEqual(seen.filter((n, i) => n !== seen[i - 1]), [0, 1, 2], `counts per chunk: ${seen}`);
  });

  it('skips malformed entries in a chunk and keeps the good ones', () => {
    const message = { role: 'assistant', text: '' };
    applyChunk(message, { glimpse: { detections: [{ image: 0, point: [1, 2], label: 'a' }] } });
    applyChunk(message, { glimpse: { detections: [{ image: 0, bbox: 'oops' }, { image: 0, point: [3, 4], label: 'b' }] } });
    applyChunk(message, { glimpse: { detections: [{ bogus: true }] } });
    applyChunk(message, { glimpse: { detections: 'not a list' } });
    assert.deepEqual(message.detections.map((d) => d.label), ['a', 'b']);
  });

  it('leaves an answer without detections without the field', () => {
    const message = { role: 'assistant', text: '' };
    applyChunk(message, { choices: [{ delta: { content: 'no boxes' } }], glimpse: { detections: [] } });
    assert.equal('detections' in message, false);
  });
});

describe('detectionSnippets', () => {
  it('finds the fixture JSON objects inside its fenced code block', () => {
    const snippets = detectionSnippets(FIXTURE.text, FIXTURE.glimpse.detections);
    assert.deepEqual(snippets, [
      '{"bbox_2d": [100, 150, 450, 800], "label": "left block"}',
      '{"bbox_2d": [550, 200, 950, 600], "label": "right block"}',
    ]);
    // The page marks each snippet in the rendered answer's text: it must survive the renderer.
    const [, block] = parseMarkdown(FIXTURE.text);
    assert.equal(block.tag, 'code-block');
    assert.equal(block.language, 'json');
    for (const snippet of snippets) assert.ok(block.code.includes(snippet), snippet);
  });

  it('counts code points, as the server does', () => {
    const text = '😀 é [{"point_2d": [5, 6], "label": "dot"}]';
    const start = Array.from(text).indexOf('{');
    const d = { image: 0, point: [1, 2], span: [start, start + 36] };
    assert.deepEqual(detectionSnippets(text, [d]), ['{"point_2d": [5, 6], "label": "dot"}']);
  });

  it('gives null for a detection without a span', () => {
    assert.deepEqual(detectionSnippets('abc', [{ image: 0, point: [1, 2] }, { image: 0, point: [1, 2], span: [1, 2] }]), [null, 'b']);
  });
});

describe('labelColours', () => {
  it('gives each distinct label the next palette colour, reused for repeats', () => {
    const detections = ['cat', 'dog', 'cat', '', 'dog'].map((label) => ({ label }));
    assert.deepEqual(labelColours(detections), [PALETTE[0], PALETTE[1], PALETTE[0], PALETTE[2], PALETTE[1]]);
  });

  it('wraps around after the palette', () => {
    const detections = Array.from({ length: PALETTE.length + 2 }, (_, i) => ({ label: 'l' + i }));
    const colours = labelColours(detections);
    assert.equal(colours[PALETTE.length], PALETTE[0]);
    assert.equal(colours[PALETTE.length + 1], PALETTE[1]);
  });
});

describe('detectionShape', () => {
  it('draws a box from its corners, at least 1 px each way', () => {
    assert.deepEqual(detectionShape({ bbox: [40, 45, 180, 240] }, 400, 300), { kind: 'rect', x: 40, y: 45, width: 140, height: 195, strokeWidth: 2 });
    assert.deepEqual(detectionShape({ bbox: [10, 10, 10, 5] }, 400, 300), { kind: 'rect', x: 10, y: 10, width: 1, height: 1, strokeWidth: 2 });
  });

  it('scales the stroke and point radius with the image', () => {
    assert.equal(detectionShape({ bbox: [0, 0, 1, 1] }, 2000, 1000).strokeWidth, 5);
    assert.deepEqual(detectionShape({ point: [7, 8] }, 2000, 1000), { kind: 'circle', cx: 7, cy: 8, r: 12.5 });
    assert.deepEqual(detectionShape({ point: [7, 8] }, 64, 96), { kind: 'circle', cx: 7, cy: 8, r: 5 });
  });
});

describe('imagesBefore', () => {
  it('lists the images of the questions before the answer, in order', () => {
    const a = { name: 'a' };
    const b = { name: 'b' };
    const c = { name: 'c' };
    const answer1 = { role: 'assistant', text: '' };
    const answer2 = { role: 'assistant', text: '' };
    const messages = [
      { role: 'user', images: [a, b], text: '' }, answer1,
      { role: 'error', text: 'failed' },
      { role: 'user', images: [c], text: '' }, answer2,
      { role: 'user', images: [{ name: 'later' }], text: '' },
    ];
    assert.deepEqual(imagesBefore(messages, answer1), [a, b]);
    assert.deepEqual(imagesBefore(messages, answer2), [a, b, c]);
  });
});
