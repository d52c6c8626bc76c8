// Unit tests of the chat data logic: request building and chunk folding (webui/messages.js),
// presets (webui/presets.js) and the export / import format (webui/transfer.js).
// Run: node --test webui/test/*.test.mjs
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  applyChunk, progressView, requestMessages, splitThinking, stripMarkdownFence, timingsText, timingsTitle, titleFor,
} from '../messages.js';
import { PRESETS, systemPromptText } from '../presets.js';
import { cleanConversation, EXPORT_FORMAT, exportData, importedConversations } from '../transfer.js';

const PNG = 'data:image/png;base64,iVBORw0KGgo=';
const image = (name) => ({ name, dataUrl: PNG, width: 4, height: 3 });

function conversation(system, messages) {
  return { id: 'c1', title: '', createdAt: 1, updatedAt: 2, system, messages };
}

describe('requestMessages', () => {
  const messages = [
    { role: 'user', text: 'What is this?', images: [image('a.png'), image('b.png')] },
    { role: 'assistant', text: 'Two squares.' },
    { role: 'error', text: 'HTTP 500' },
    { role: 'assistant', text: '' }, // stopped before any text: not sent
    { role: 'user', text: 'Colours?', images: [] },
  ];

  it('sends the preset system prompt, images before the text, and earlier answers', () => {
    const out = requestMessages(conversation({ preset: 'general', custom: '' }, messages), 'auto');
    assert.deepEqual(out, [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: [
        { type: 'image_url', image_url: { url: PNG } },
        { type: 'image_url', image_url: { url: PNG } },
        { type: 'text', text: 'What is this?' },
      ] },
      { role: 'assistant', content: 'Two squares.' },
      { role: 'user', content: 'Colours?' },
    ]);
  });

  it('adds image_url.detail unless it is auto', () => {
    const out = requestMessages(conversation({ preset: 'none', custom: '' }, [{ role: 'user', text: '', images: [image('a')] }]), 'high');
    assert.deepEqual(out, [{ role: 'user', content: [{ type: 'image_url', image_url: { url: PNG, detail: 'high' } }] }]);
  });

  it('sends a video as its frames and their rate, after the images', () => {
    const video = { name: 'clip.mp4', frames: [PNG, PNG, PNG], fps: 1.5, width: 4, height: 3 };
    const ask = [{ role: 'user', text: 'What happens?', images: [image('a')], videos: [video] }];
    assert.deepEqual(requestMessages(conversation({ preset: 'none', custom: '' }, ask), 'auto'), [{ role: 'user', content: [
      { type: 'image_url', image_url: { url: PNG } },
      { type: 'video', video: [PNG, PNG, PNG], fps: 1.5 },
      { type: 'text', text: 'What happens?' },
    ] }]);
    const kept = cleanConversation(conversation({ preset: 'none', custom: '' }, ask));
    assert.deepEqual(kept.messages[0].videos, [video]);
    const broken = { ...video, frames: [PNG, 'https://example.com/x.png'] };
    const dropped = cleanConversation(conversation({ preset: 'none', custom: '' }, [{ ...ask[0], videos: [broken] }]));
    assert.equal(dropped.messages[0].videos, undefined);
  });

  it('uses the trimmed custom prompt, and none when it is empty', () => {
    const ask = [{ role: 'user', text: 'hi', images: [] }];
    assert.deepEqual(requestMessages(conversation({ preset: 'custom', custom: '  Answer in French. \n' }, ask), 'auto')[0],
      { role: 'system', content: 'Answer in French.' });
    assert.equal(requestMessages(conversation({ preset: 'custom', custom: '  ' }, ask), 'auto')[0].role, 'user');
    assert.equal(requestMessages(conversation({ preset: 'unknown', custom: '' }, ask), 'auto')[0].role, 'user');
  });
});

describe('presets', () => {
  it('have unique ids and a text for each prompt preset', () => {
    assert.equal(new Set(PRESETS.map((p) => p.id)).size, PRESETS.length);
    for (const p of PRESETS) if (!['none', 'custom'].includes(p.id)) assert.ok(systemPromptText({ preset: p.id, custom: '' }).length > 20, p.id);
  });

  it('ask for grounding JSON in the locate preset', () => {
    assert.match(systemPromptText({ preset: 'locate', custom: '' }), /\{"bbox_2d": \[x1, y1, x2, y2\], "label": "name"\}/);
  });
});

describe('prompt progress', () => {
  it('is kept from prompt_progress chunks and shown images first, then the uncached prompt', () => {
    const message = { role: 'assistant', text: '' };
    applyChunk(message, { choices: [{ delta: {} }], prompt_progress: { total: 120, cache: 20, processed: 20, images: 2, images_encoded: 1 } });
    assert.deepEqual(message.progress, { processed: 20, total: 120, cache: 20, images: 2, imagesEncoded: 1 });
    assert.deepEqual(progressView(message.progress), { fraction: 0.5, label: 'Looking at the images (2 of 2)…' });
    applyChunk(message, { prompt_progress: { total: 120, cache: 20, processed: 70, images: 2, images_encoded: 2 } });
    assert.deepEqual(progressView(message.progress), { fraction: 0.5, label: 'Reading the prompt (50%)…' });
    applyChunk(message, { prompt_progress: { total: 'x', processed: -4 } });
    assert.deepEqual(progressView(message.progress), { fraction: 0, label: 'Reading the prompt (0%)…' });
  });
});

describe('applyChunk', () => {
  it('appends content and reasoning, and records finish reason, usage and timings', () => {
    const message = { role: 'assistant', text: '' };
    applyChunk(message, { choices: [{ delta: { role: 'assistant', content: '' } }] });
    applyChunk(message, { choices: [{ delta: { reasoning_content: 'hmm ' } }] });
    applyChunk(message, { choices: [{ delta: { reasoning_content: 'ok', content: 'Hel' } }] });
    applyChunk(message, { choices: [{ delta: { content: 'lo' }, finish_reason: null }] });
    applyChunk(message, { choices: [{ delta: {}, finish_reason: 'length' }] });
    applyChunk(message, { choices: [], usage: { prompt_tokens: 12, completion_tokens: '3', total_tokens: 15 },
      timings: { vision_ms: 5, prefill_ms: 'x', decode_ms: 30, cached_prompt_tokens: 2 } });
    assert.deepEqual(message, {
      role: 'assistant', text: 'Hello', reasoning: 'hmm ok', finishReason: 'length',
      usage: { prompt_tokens: 12, completion_tokens: 3 },
      timings: { vision_ms: 5, prefill_ms: 0, decode_ms: 30, cached_prompt_tokens: 2 },
    });
  });

  it('reads a whole (non-streamed) chat.completion', () => {
    const message = { role: 'assistant', text: '' };
    applyChunk(message, { object: 'chat.completion', choices: [{ message: { role: 'assistant', content: 'Done.' }, finish_reason: 'stop' }] });
    assert.deepEqual([message.text, message.finishReason], ['Done.', 'stop']);
  });
});

describe('texts derived from messages', () => {
  it('splitThinking separates a leading <think> block, open while streaming', () => {
    assert.deepEqual(splitThinking('<think> plan </think>\n\nAnswer'), { thinking: 'plan', answer: 'Answer', open: false });
    assert.deepEqual(splitThinking('<think>still going'), { thinking: 'still going', answer: '', open: true });
    assert.deepEqual(splitThinking('No thoughts <think>x</think>'), { thinking: '', answer: 'No thoughts <think>x</think>' });
  });

  it('stripMarkdownFence removes the fence around a whole document (as src/chat/presets.rs)', () => {
    assert.equal(stripMarkdownFence('```markdown\n# T\n\n| a |\n|---|\n```\n'), '# T\n\n| a |\n|---|');
    assert.equal(stripMarkdownFence('```md\nx\n```'), 'x');
    assert.equal(stripMarkdownFence('  # Plain\n'), '# Plain');
    const inner = '```markdown\nText\n```\ncode\n```\nmore\n```';
    assert.equal(stripMarkdownFence(inner), inner);
    assert.equal(stripMarkdownFence('```json\n[]\n```'), '```json\n[]\n```');
  });

  it('titleFor uses the name, else the first line of the first question, else the images', () => {
    assert.equal(titleFor({ title: 'Named', messages: [] }), 'Named');
    assert.equal(titleFor({ title: '', messages: [] }), 'New chat');
    assert.equal(titleFor({ title: '', messages: [{ role: 'user', text: '  First line\nsecond', images: [] }] }), 'First line');
    assert.equal(titleFor({ title: '', messages: [{ role: 'user', text: 'x'.repeat(60), images: [] }] }), 'x'.repeat(47) + '…');
    assert.equal(titleFor({ title: '', messages: [{ role: 'user', text: '', images: [image('a')] }] }), 'Image');
    assert.equal(titleFor({ title: '', messages: [{ role: 'user', text: '', images: [image('a'), image('b')] }] }), '2 images');
  });

  it('timingsText gives stage times, rates from uncached prompt tokens, and the token count', () => {
    const message = {
      usage: { prompt_tokens: 150, completion_tokens: 20 },
      timings: { vision_ms: 120, prefill_ms: 200, decode_ms: 400, cached_prompt_tokens: 50 },
    };
    assert.equal(timingsText(message), 'vision 120 ms · prefill 500 tok/s · decode 50 tok/s · 20 tokens');
    assert.equal(timingsTitle(message), 'prompt 150 tokens, answer 20 tokens\nvision 120 ms, prefill 200 ms, decode 400 ms, cached prompt 50 tokens');
    assert.equal(timingsText({ stopped: true, elapsedMs: 0 }), '');
    assert.equal(timingsText({ stopped: false, elapsedMs: 850 }), '');
    assert.equal(timingsText({ stopped: true, elapsedMs: 850 }), 'after 850 ms');
    assert.equal(timingsText({}), '');
  });
});

describe('export and import', () => {
  it('exports in the glimpse.conversations format', () => {
    const data = exportData([]);
    assert.deepEqual([data.format, data.version, data.conversations], [EXPORT_FORMAT, 1, []]);
    assert.ok(!Number.isNaN(Date.parse(data.exported_at)));
  });

  it('round-trips a conversation', () => {
    const original = conversation({ preset: 'locate', custom: '' }, [
      { role: 'user', text: 'Find it', images: [image('a.png')], createdAt: 3 },
      { role: 'assistant', text: 'Here', createdAt: 4, finishReason: 'stop', usage: { prompt_tokens: 9, completion_tokens: 1 },
        detections: [{ image: 0, label: 'x', bbox: [1, 2, 3, 4], span: [0, 4] }] },
    ]);
    const [back] = importedConversations(JSON.parse(JSON.stringify(exportData([original]))));
    assert.deepEqual(back, original);
  });

  it('accepts an export, a bare list or a single conversation, and skips what is not one', () => {
    const one = conversation({ preset: 'general', custom: '' }, []);
    assert.equal(importedConversations({ format: EXPORT_FORMAT, conversations: [one, null, { id: 'x' }] }).length, 1);
    assert.equal(importedConversations([one, one]).length, 2);
    assert.equal(importedConversations(one).length, 1);
    assert.deepEqual(importedConversations({ hello: 'world' }), []);
    assert.deepEqual(importedConversations(null), []);
  });

  it('drops unsafe images, unknown roles and bad detections; defaults an unknown preset', () => {
    const clean = cleanConversation({
      system: { preset: 'evil', custom: 5 },
      messages: [
        { role: 'user', text: 'q', images: [
          { name: 'ok', dataUrl: PNG, width: 4, height: 3 },
          { name: 'remote', dataUrl: 'https://evil.example/x.png' },
          { name: 'svg', dataUrl: 'data:image/svg+xml,<svg onload=alert(1)>' },
          { name: 'js', dataUrl: 'javascript:alert(1)' },
        ] },
        { role: 'system', text: 'injected' },
        { role: 'assistant', text: 'a', detections: [{ image: 0, bbox: [1, 2] }, { image: 0, point: [1, 2] }], stopped: 'yes' },
      ],
    });
    assert.deepEqual(clean.system, { preset: 'general', custom: '5' });
    assert.deepEqual(clean.messages.map((m) => m.role), ['user', 'assistant']);
    assert.deepEqual(clean.messages[0].images.map((i) => i.name), ['ok']);
    assert.deepEqual(clean.messages[1].detections, [{ image: 0, label: '', point: [1, 2] }]);
    assert.equal(clean.messages[1].stopped, true);
    assert.equal(typeof clean.id, 'string');
    assert.ok(clean.id.length > 0);
  });
});
