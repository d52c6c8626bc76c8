// Unit tests of the API client's pure parts (webui/api.js): reading the server-sent event
// stream of a chat completion, and error responses.
// Run: node --test webui/test/*.test.mjs
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { announced, apiError, describeError, errorFromResponse, readEventStream } from '../api.js';

// A streaming response whose body arrives in these pieces.
function streamed(pieces, status = 200) {
  const encoder = new TextEncoder();
  const body = new ReadableStream({
    start(controller) {
      for (const piece of pieces) controller.enqueue(encoder.encode(piece));
      controller.close();
    },
  });
  return new Response(body, { status, headers: { 'Content-Type': 'text/event-stream' } });
}

async function collect(response) {
  const out = [];
  for await (const event of readEventStream(response)) out.push(event);
  return out;
}

describe('readEventStream', () => {
  it('yields each data event until [DONE], ignoring comments, other fields and what follows', async () => {
    const events = await collect(streamed([
      ': keep-alive\n\n',
      'event: message\ndata: {"n":1}\n\n',
      'data:{"n":2}\r\n\r\n',
      'data: [DONE]\n\n',
      'data: {"n":3}\n\n',
    ]));
    assert.deepEqual(events, [{ n: 1 }, { n: 2 }]);
  });

  it('reassembles events split across reads, including inside a multi-byte character', async () => {
    const text = 'data: {"choices":[{"delta":{"content":"héllo 😀"}}]}\n\ndata: {"n":2}\n\ndata: [DONE]\n\n';
    const bytes = new TextEncoder().encode(text);
    const body = new ReadableStream({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 5) controller.enqueue(bytes.slice(i, i + 5));
        controller.close();
      },
    });
    const events = await collect(new Response(body));
    assert.deepEqual(events, [{ choices: [{ delta: { content: 'héllo 😀' } }] }, { n: 2 }]);
  });

  it('ends without [DONE] when the body ends (an unterminated last line is dropped)', async () => {
    assert.deepEqual(await collect(streamed(['data: {"n":1}\n\n', 'data: {"n":2'])), [{ n: 1 }]);
  });

  it('throws on a malformed event', async () => {
    await assert.rejects(collect(streamed(['data: {"n":1}\n\n', 'data: {not json\n\n'])), /malformed stream event: \{not json/);
  });

  it('throws the error an event carries, with the response status', async () => {
    const error = await collect(streamed(['data: {"error":{"message":"out of memory","type":"server_error"}}\n\n'])).catch((e) => e);
    assert.ok(error instanceof Error);
    assert.deepEqual([error.message, error.status, error.type], ['out of memory', 200, 'server_error']);
  });
});

describe('errors', () => {
  it('errorFromResponse reads an OpenAI error body', async () => {
    const response = new Response(JSON.stringify({ error: { message: 'image too large', type: 'invalid_request_error', code: 413 } }), { status: 413 });
    const error = await errorFromResponse(response);
    assert.deepEqual([error.message, error.status, error.type], ['image too large', 413, 'invalid_request_error']);
    assert.equal(describeError(error), 'image too large (HTTP 413, invalid_request_error)');
  });

  it('errorFromResponse falls back to the body text, then the status line', async () => {
    assert.equal((await errorFromResponse(new Response('  plain failure \n', { status: 502 }))).message, 'plain failure');
    assert.equal((await errorFromResponse(new Response('', { status: 503, statusText: 'Service Unavailable' }))).message, '503 Service Unavailable');
  });

  it('describeError explains 401, unreachable servers and other errors', () => {
    assert.equal(describeError(apiError(401, { error: { message: 'missing API key' } })), 'missing API key — set the API key in Settings.');
    assert.equal(describeError(new TypeError('Failed to fetch')), 'Could not reach the server: Failed to fetch');
    assert.equal(describeError(new Error('stream ended')), 'stream ended');
    assert.equal(apiError(500, 'not an object', '').message, 'request failed');
  });
});

describe('announced', () => {
  it('takes the first positive number from the sources or their limits', () => {
    const model = { id: 'm', limits: { max_image_pixels: 0 } };
    const health = { limits: { max_image_pixels: 16777216, image_budget_pixels: 'big' } };
    assert.equal(announced('max_image_pixels', model, health), 16777216);
    assert.equal(announced('image_budget_pixels', model, null, health, { image_budget_pixels: 1003520 }), 1003520);
    assert.equal(announced('image_budget_pixels', model, null), null);
  });
});
