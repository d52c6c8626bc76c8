// End-to-end test of the web chat page in Debian's headless Chromium (playwright-core), against a
// running `glimpse serve` whose address is in GLIMPSE_URL (scripts/browser_test.sh starts it).
// Covers: file input / drop / paste + thumbnails, streaming, Stop (the server frees the slot), server errors, reload
// restore, system prompt presets in the request, safe markdown and downscaling, grounding boxes drawn over
// the image and the image detail setting, Markdown download (answers faked with page.route),
// rename/delete, export/import, screenshots.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { deflateSync, crc32 } from 'node:zlib';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { MARKDOWN_ANSWER } from './markdown_answer.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BASE_URL = process.env.GLIMPSE_URL;
const API_KEY = process.env.GLIMPSE_API_KEY || '';
const SCREENSHOTS = process.env.SCREENSHOT_DIR || path.join(repo, 'target/browser-screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHORT_ANSWER_TOKENS = 24;
const LONG_ANSWER_TOKENS = Number(process.env.STOP_MAX_TOKENS || 4000);
const GENERATION_TIMEOUT = 180_000;
const FIXTURE_IMAGES = ['odd_333x517.png', 'resize_300x200.jpg', 'small_64x96.png'].map((f) => path.join(repo, 'tests/fixtures/images', f));
const FIRST_QUESTION = 'What is in these two images?\nAnswer briefly.';
const PRESET_TEXT = { general: 'You are a helpful assistant.', ocr: 'Transcribe all text in the image exactly' };

if (!BASE_URL) {
  console.error('GLIMPSE_URL is not set: start `glimpse serve` and pass its http://HOST:PORT/ address');
  process.exit(2);
}

// ------------------------------------------------------------------ helpers

// A PNG encoder just big enough to make test images of any size (RGB gradient).
function pngImage(width, height) {
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const raw = Buffer.alloc(height * (width * 3 + 1));
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) raw.set([(x * 255 / width) | 0, (y * 255 / height) | 0, 128], row + 1 + x * 3);
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', header), chunk('IDAT', deflateSync(raw, { level: 1 })), chunk('IEND', Buffer.alloc(0))]);
}

function pngSizeOfDataUrl(url) {
  const match = /^data:image\/png;base64,(.*)$/.exec(url);
  assert.ok(match, `expected a PNG data URL, got ${url.slice(0, 40)}`);
  const bytes = Buffer.from(match[1].slice(0, 64), 'base64');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

// The body of a streamed answer in the server's format, for page.route. Each of `detections`
// (the server's glimpse.detections) rides on the chunk that completes its text, as the server sends it.
function sseAnswer(text, usage, timings, detections = []) {
  const chunk = (choices, extra) => `data: ${JSON.stringify({ id: 'chatcmpl-test', object: 'chat.completion.chunk', created: 0, model: 'test', choices, ...extra })}\n\n`;
  const pieces = text.match(/[\s\S]{1,37}/g);
  let sent = 0;
  const extensionFor = (piece) => {
    const before = sent;
    sent += Array.from(piece).length;
    const done = detections.filter((d) => d.span[1] > before && d.span[1] <= sent);
    return done.length ? { glimpse: { detections: done } } : {};
  };
  return [chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]),
    ...pieces.map((content) => chunk([{ index: 0, delta: { content }, finish_reason: null }], extensionFor(content))),
    chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]),
    chunk([], { usage, timings }),
    'data: [DONE]\n\n'].join('');
}

let stepNumber = 0;
// A streamed answer whose reasoning arrives as delta.reasoning_content, as the server splits it
// for thinking models, before the answer's content.
function sseThinkingAnswer(reasoning, text) {
  const chunk = (delta, finish = null) => `data: ${JSON.stringify({ id: 'chatcmpl-think', object: 'chat.completion.chunk', created: 0, model: 'test', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  return [chunk({ role: 'assistant', content: '' }),
    ...reasoning.match(/[\s\S]{1,11}/g).map((piece) => chunk({ reasoning_content: piece })),
    ...text.match(/[\s\S]{1,11}/g).map((piece) => chunk({ content: piece })),
    chunk({}, 'stop'), 'data: [DONE]\n\n'].join('');
}

async function step(name, action) {
  stepNumber++;
  const started = Date.now();
  try {
    await action();
  } catch (err) {
    console.log(`not ok ${stepNumber} - ${name}`);
    throw err;
  }
  console.log(`ok ${stepNumber} - ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

// ------------------------------------------------------------------ the test

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light', locale: 'en-US', acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(30_000);

const chatRequests = []; // parsed bodies of every POST /v1/chat/completions, in order
const abortedChats = [];
const foreignRequests = [];
const problems = [];
const vendorRequests = []; // paths of the vendored libraries' files the page fetched, in order
page.on('request', (request) => {
  const url = request.url();
  if (url.startsWith(BASE_URL) && new URL(url).pathname.startsWith('/vendor/')) vendorRequests.push(new URL(url).pathname);
  if (!url.startsWith(BASE_URL) && !url.startsWith('data:') && !url.startsWith('blob:')) foreignRequests.push(url);
  if (request.method() === 'POST' && url.endsWith('/v1/chat/completions')) chatRequests.push(JSON.parse(request.postData()));
});
page.on('requestfailed', (request) => {
  if (request.url().endsWith('/v1/chat/completions')) abortedChats.push(request.failure().errorText);
});
page.on('pageerror', (err) => problems.push('page error: ' + err.message));
page.on('console', (message) => {
  // Chromium logs every 4xx response; the test provokes some on purpose.
  if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) problems.push('console error: ' + message.text());
});

const lastMessage = page.locator('#message-list > .message').last();
const sidebarItem = (title) => page.locator('.conversation-item', { has: page.locator('.conversation-title', { hasText: title }) });

async function setSettings({ temperature, maxTokens, apiKey, detail }) {
  await page.click('#open-settings');
  if (temperature !== undefined) {
    await page.$eval('#temperature-range', (input, value) => {
      input.value = String(value);
      input.dispatchEvent(new Event('input', { bubbles: true }));
    }, temperature);
  }
  if (maxTokens !== undefined) await page.fill('#max-tokens', String(maxTokens));
  if (apiKey !== undefined) await page.fill('#api-key', apiKey);
  if (detail !== undefined) await page.selectOption('#image-detail', detail);
  await page.click('#settings-save');
  await page.locator('#settings-dialog').waitFor({ state: 'hidden' });
}

async function waitIdle() {
  await page.locator('#stop').waitFor({ state: 'hidden', timeout: GENERATION_TIMEOUT });
  await page.locator('#send').waitFor({ state: 'visible' });
}

async function expectFinishedAnswer() {
  const answer = lastMessage;
  await answer.locator('.message-meta .timings').waitFor({ timeout: GENERATION_TIMEOUT });
  assert.equal(await answer.getAttribute('data-role'), 'assistant');
  assert.ok((await answer.locator('.markdown').textContent()).length > 0, 'the answer has text');
  assert.match(await answer.locator('.timings').textContent(), /\d+ tokens/);
}

// The server's unlabelled Prometheus values (GET /metrics), e.g. glimpse_active_generations.
async function serverMetrics() {
  const response = await fetch(new URL('metrics', BASE_URL), { headers: API_KEY ? { Authorization: `Bearer ${API_KEY}` } : {} });
  assert.equal(response.status, 200, 'GET /metrics');
  const values = {};
  for (const line of (await response.text()).split('\n')) {
    const match = /^([a-z_]+) ([0-9.e+-]+)$/.exec(line);
    if (match) values[match[1]] = Number(match[2]);
  }
  return values;
}

// Sends `text` and waits until the answer is complete (the page shows Stop before it fetches).
async function ask(text) {
  const before = chatRequests.length;
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
  for (let waited = 0; chatRequests.length === before; waited += 50) {
    assert.ok(waited < 10_000, `no request was sent for "${text}"`);
    await page.waitForTimeout(50);
  }
  await waitIdle();
}

try {
  await mkdir(SCREENSHOTS, { recursive: true });
  await rm(path.join(SCREENSHOTS, 'failure.png'), { force: true });

  await step('page loads from the server and finds the model', async () => {
    const response = await page.goto(BASE_URL);
    assert.equal(response.status(), 200);
    await page.locator('#server-status').waitFor();
    // With --api-key the model list needs the key; /health alone may answer without it.
    const expected = API_KEY ? ['auth', 'ok'] : ['ok'];
    await page.waitForFunction((states) => states.includes(document.querySelector('#server-status').dataset.state), expected);
    await page.locator('#drop-zone').waitFor();
  });

  await step('settings set temperature 0 and a small token limit', async () => {
    await setSettings({ temperature: 0, maxTokens: SHORT_ANSWER_TOKENS });
    const summary = await page.textContent('#settings-summary');
    assert.match(summary, new RegExp(`temperature 0 · max ${SHORT_ANSWER_TOKENS} tokens`));
  });

  await step('images chosen with the file input show as thumbnails and can be removed', async () => {
    await page.setInputFiles('#file-input', FIXTURE_IMAGES);
    await page.locator('#attachments .thumb img').nth(2).waitFor();
    await page.click('#attachments .thumb:nth-child(3) .remove');
    assert.equal(await page.locator('#attachments .thumb').count(), 2);
  });

  await step('images can also be dropped onto the page and pasted from the clipboard', async () => {
    const overlayShown = await page.evaluate(async () => {
      const imageFile = async (name, colour) => {
        const canvas = document.createElement('canvas');
        canvas.width = 40;
        canvas.height = 30;
        const context = canvas.getContext('2d');
        context.fillStyle = colour;
        context.fillRect(0, 0, 40, 30);
        const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
        return new File([blob], name, { type: 'image/png' });
      };
      const dropped = new DataTransfer();
      dropped.items.add(await imageFile('dropped.png', 'red'));
      document.querySelector('#messages').dispatchEvent(new DragEvent('dragenter', { dataTransfer: dropped, bubbles: true }));
      const shown = !document.querySelector('#drop-overlay').hidden;
      document.querySelector('#messages').dispatchEvent(new DragEvent('drop', { dataTransfer: dropped, bubbles: true, cancelable: true }));
      const pasted = new DataTransfer();
      pasted.items.add(await imageFile('pasted.png', 'blue'));
      document.querySelector('#prompt').dispatchEvent(new ClipboardEvent('paste', { clipboardData: pasted, bubbles: true, cancelable: true }));
      return shown;
    });
    assert.equal(overlayShown, true, 'dragging files over the page shows the drop overlay');
    assert.equal(await page.locator('#drop-overlay').isHidden(), true);
    await page.locator('#attachments .thumb img').nth(3).waitFor();
    assert.deepEqual(await page.locator('#attachments .thumb img').evaluateAll((imgs) => imgs.map((img) => img.alt)),
      ['odd_333x517.png', 'resize_300x200.jpg', 'dropped.png', 'pasted.png']);
    await page.click('#attachments .remove[aria-label="Remove dropped.png"]');
    await page.click('#attachments .remove[aria-label="Remove pasted.png"]');
    assert.equal(await page.locator('#attachments .thumb').count(), 2);
  });

  await step('Shift+Enter adds a line, Enter sends the question', async () => {
    await page.click('#prompt');
    await page.keyboard.type('What is in these two images?');
    await page.keyboard.press('Shift+Enter');
    await page.keyboard.type('Answer briefly.');
    assert.equal(await page.inputValue('#prompt'), FIRST_QUESTION);
    assert.equal(chatRequests.length, 0);
    await page.keyboard.press('Enter');
    await page.locator('#message-list .message.user').first().waitFor();
    assert.equal(await page.inputValue('#prompt'), '');
    assert.equal(await page.locator('#attachments .thumb').count(), 0);
  });

  if (API_KEY) {
    await step('a 401 from the server is shown in the conversation, then the API key fixes it', async () => {
      await page.locator('.message.error').waitFor({ timeout: GENERATION_TIMEOUT });
      assert.match(await page.textContent('.message.error'), /HTTP 401|API key/);
      await setSettings({ apiKey: API_KEY });
      await page.waitForFunction(() => document.querySelector('#server-status').dataset.state === 'ok');
      await page.click('.message.error .retry');
      await page.locator('.message.error').waitFor({ state: 'detached' });
    });
  }

  await step('the answer streams in with timings, and the request carried both images', async () => {
    await waitIdle();
    await expectFinishedAnswer();
    const body = chatRequests.at(-1);
    assert.equal(body.stream, true);
    assert.equal(body.temperature, 0);
    assert.equal(body.max_tokens, SHORT_ANSWER_TOKENS);
    assert.deepEqual(body.stream_options, { include_usage: true });
    const user = body.messages.at(-1);
    assert.equal(user.role, 'user');
    assert.deepEqual(user.content.map((part) => part.type), ['image_url', 'image_url', 'text']);
    assert.match(user.content[0].image_url.url, /^data:image\/png;base64,/);
    assert.match(user.content[1].image_url.url, /^data:image\/jpeg;base64,/);
    assert.equal(user.content[2].text, FIRST_QUESTION);
    assert.deepEqual(body.messages[0], { role: 'system', content: PRESET_TEXT.general });
    assert.match(await lastMessage.locator('.timings').textContent(), /vision .* · prefill .* tok\/s · decode .* tok\/s/);
  });

  await step('Stop ends a long generation early and the page is usable again', async () => {
    await setSettings({ maxTokens: LONG_ANSWER_TOKENS });
    const requestsBefore = chatRequests.length;
    const metricsBefore = await serverMetrics();
    await page.fill('#prompt', 'Describe every detail you can see.');
    await page.press('#prompt', 'Enter');
    const answer = page.locator('#message-list > .message.assistant.streaming .markdown');
    await page.waitForFunction(() => {
      const node = document.querySelector('#message-list > .message.assistant.streaming .markdown');
      return node && !node.querySelector('.typing') && node.textContent.length >= 10;
    }, null, { timeout: GENERATION_TIMEOUT });
    const early = (await answer.textContent()).length;
    await page.waitForFunction((length) => {
      const node = document.querySelector('#message-list > .message.assistant.streaming .markdown');
      return node && node.textContent.length > length;
    }, early, { timeout: GENERATION_TIMEOUT });
    assert.equal(chatRequests.length, requestsBefore + 1);
    assert.equal(chatRequests.at(-1).max_tokens, LONG_ANSWER_TOKENS);
    await page.click('#stop');
    await waitIdle();
    const stopped = lastMessage;
    assert.equal(await stopped.locator('.badge', { hasText: 'Stopped' }).count(), 1);
    assert.equal(await stopped.locator('.badge', { hasText: 'Max tokens' }).count(), 0);
    assert.ok(abortedChats.length >= 1, 'the streaming request was aborted by the browser');
    const textAtStop = await stopped.locator('.markdown').textContent();
    assert.ok(textAtStop.length > 0, 'the partial answer is kept');
    await page.waitForTimeout(1000);
    assert.equal(await stopped.locator('.markdown').textContent(), textAtStop, 'nothing arrives after Stop');
    let metrics = await serverMetrics();
    for (let waited = 0; metrics.glimpse_active_generations !== 0; waited += 100) {
      assert.ok(waited < 10_000, 'the server still generates 10 s after Stop (slot not freed on disconnect)');
      await page.waitForTimeout(100);
      metrics = await serverMetrics();
    }
    const generated = metrics.glimpse_completion_tokens_total - metricsBefore.glimpse_completion_tokens_total;
    assert.ok(generated < LONG_ANSWER_TOKENS, `the server generated ${generated} tokens, the whole budget`);
    await setSettings({ maxTokens: SHORT_ANSWER_TOKENS });
    await ask('Thanks. One more short answer?');
    await expectFinishedAnswer();
  });

  await step('after a reload the conversation comes back with its images', async () => {
    await page.reload();
    await sidebarItem('What is in these two images?').waitFor();
    await sidebarItem('What is in these two images?').locator('.conversation-open').click();
    await page.locator('#message-list .message.user').nth(2).waitFor();
    const images = page.locator('#message-list .message.user').first().locator('img');
    assert.equal(await images.count(), 2);
    await page.waitForFunction(() => [...document.querySelectorAll('#message-list .message.user:first-child img')]
      .every((img) => img.complete && img.naturalWidth > 0));
    assert.deepEqual(await images.evaluateAll((imgs) => imgs.map((img) => [img.naturalWidth, img.naturalHeight])), [[517, 333], [200, 300]]);
    assert.equal(await page.locator('#message-list .message.assistant').count(), 3);
    assert.equal(await page.locator('#message-list .message.assistant').nth(1).locator('.badge', { hasText: 'Stopped' }).count(), 1);
    assert.equal(await page.textContent('#chat-title'), 'What is in these two images?');
  });

  await step('the chosen system prompt preset is visible and sent with the request', async () => {
    await page.selectOption('#system-preset', 'ocr');
    assert.match(await page.textContent('#system-text'), /Transcribe all text/);
    await ask('Read the text.');
    const system = chatRequests.at(-1).messages[0];
    assert.equal(system.role, 'system');
    assert.ok(system.content.startsWith(PRESET_TEXT.ocr), system.content);
    await expectFinishedAnswer();

    await page.selectOption('#system-preset', 'custom');
    await page.fill('#system-custom', 'Always answer in French.');
    await ask('Again, please.');
    assert.deepEqual(chatRequests.at(-1).messages[0], { role: 'system', content: 'Always answer in French.' });

    await page.selectOption('#system-preset', 'none');
    await ask('And without a system prompt?');
    assert.equal(chatRequests.at(-1).messages[0].role, 'user');

    await page.selectOption('#system-preset', 'custom');
    await page.waitForTimeout(300); // the choice is written to IndexedDB asynchronously
    await page.reload();
    await page.locator('#message-list .message.user').first().waitFor();
    assert.equal(await page.inputValue('#system-preset'), 'custom');
    assert.equal(await page.inputValue('#system-custom'), 'Always answer in French.');
  });

  await step('model output is rendered as markdown and cannot inject HTML; big images are downscaled to the server\'s budget', async () => {
    assert.deepEqual(vendorRequests, [], 'no answer so far had a formula or a code block');
    let sentImage = null;
    await page.route('**/v1/chat/completions', async (route) => {
      const body = JSON.parse(route.request().postData());
      sentImage = body.messages.at(-1).content[0].image_url.url;
      await route.fulfill({
        status: 200,
        headers: { 'Content-Type': 'text/event-stream' },
        body: sseAnswer(MARKDOWN_ANSWER, { prompt_tokens: 150, completion_tokens: 20, total_tokens: 170 },
          { vision_ms: 120, prefill_ms: 100, decode_ms: 400, cached_prompt_tokens: 50 }),
      });
    });
    await page.click('#new-chat');
    await page.locator('#drop-zone').waitFor();
    await page.setInputFiles('#file-input', [{ name: 'wide.png', mimeType: 'image/png', buffer: pngImage(3000, 1200) }]);
    await page.locator('#attachments .thumb img').waitFor();
    // The server announces 1024 × 32² pixels (--image-max-tokens 1024): √(1048576 / 3600000) = 0.5397.
    assert.match(await page.getAttribute('#attachments .thumb', 'title'), /1619×647 \(resized from 3000×1200\)/);
    await ask('Render test');
    await page.unroute('**/v1/chat/completions');
    assert.deepEqual(pngSizeOfDataUrl(sentImage), { width: 1619, height: 647 });

    const answer = lastMessage.locator('.markdown');
    assert.equal(await answer.locator('h3').textContent(), 'Findings'); // '#' is h2 under the page's h1
    assert.equal(await answer.locator('strong').first().textContent(), 'bold');
    assert.equal(await answer.locator('em').first().textContent(), 'italic');
    assert.equal(await answer.locator('ol > li').count(), 2);
    assert.equal(await answer.locator('ol > li ul > li').textContent(), 'nested bullet');
    assert.deepEqual(await answer.locator('thead th').allTextContents(), ['Object', 'Count', 'Colour']);
    assert.deepEqual(await answer.locator('tbody tr').nth(1).locator('td').allTextContents(), ['square | box', '1', '<b>blue</b>']);
    assert.equal(await answer.locator('thead th').nth(1).evaluate((th) => th.style.textAlign), 'right');
    assert.equal(await answer.locator('.code-block code').textContent(), '<script>window.__pwned = 3</script>');
    assert.equal(await answer.locator('a').count(), 1);
    assert.equal(await answer.locator('a').getAttribute('href'), 'https://example.com/docs');
    assert.equal(await answer.locator('a').getAttribute('rel'), 'noopener noreferrer nofollow');
    assert.equal(await answer.locator('img, script, iframe, b').count(), 0, 'no HTML from the model becomes elements');
    assert.match(await answer.textContent(), /<img src=x onerror="window.__pwned=1">/);
    assert.match(await answer.locator('blockquote').textContent(), /<iframe/);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await lastMessage.locator('.timings').textContent(), 'vision 120 ms · prefill 1,000 tok/s · decode 50 tok/s · 20 tokens');
  });

  await step('a grounding answer draws its two boxes over the uploaded image, linked to the text', async () => {
    // The stub is the server's answer for this image: tests/grounding.rs checks its detections
    // against glimpse's own parser and pixel mapping.
    const fixture = JSON.parse(await readFile(path.join(repo, 'tests/fixtures/grounding/answer.json'), 'utf8'));
    const { width, height } = fixture.image;
    await page.route('**/v1/chat/completions', (route) => route.fulfill({
      status: 200,
      headers: { 'Content-Type': 'text/event-stream' },
      body: sseAnswer(fixture.text, { prompt_tokens: 320, completion_tokens: 60, total_tokens: 380 },
        { vision_ms: 90, prefill_ms: 100, decode_ms: 600, cached_prompt_tokens: 0 }, fixture.glimpse.detections),
    }));
    await page.click('#new-chat');
    await page.locator('#drop-zone').waitFor();
    await page.selectOption('#system-preset', 'locate');
    await setSettings({ detail: 'high' });
    await page.setInputFiles('#file-input', [{ name: 'shapes.png', mimeType: 'image/png', buffer: pngImage(width, height) }]);
    await page.locator('#attachments .thumb img').waitFor();
    await ask('Locate the two blocks.');
    await page.unroute('**/v1/chat/completions');
    const request = chatRequests.at(-1);
    assert.ok(request.messages[0].content.startsWith('Locate the objects'), request.messages[0].content);
    assert.equal(request.messages.at(-1).content[0].image_url.detail, 'high');

    const view = lastMessage.locator('.grounding-view');
    const groups = view.locator('.detections-layer .detection');
    assert.equal(await groups.count(), 2);
    const frame = await view.locator('.grounding-frame img').boundingBox();
    for (const [index, detection] of fixture.glimpse.detections.entries()) {
      const [x1, y1, x2, y2] = detection.bbox;
      const rect = groups.nth(index).locator('rect');
      assert.deepEqual(await rect.evaluate((r) => ['x', 'y', 'width', 'height'].map((a) => Number(r.getAttribute(a)))), [x1, y1, x2 - x1, y2 - y1]);
      // On screen the box sits where the pixels are on the displayed (scaled) image.
      const box = await rect.boundingBox();
      const scale = frame.width / width;
      const near = (a, b, what) => assert.ok(Math.abs(a - b) <= 2.5, `box ${index} ${what}: ${a} vs ${b}`);
      near(box.x - frame.x, x1 * scale, 'left');
      near(box.y - frame.y, y1 * (frame.height / height), 'top');
      near(box.width, (x2 - x1) * scale, 'width');
    }
    assert.deepEqual(await view.locator('.detection-chip').allTextContents(), ['left block', 'right block']);
    // Hovering a box highlights its JSON in the answer, and the other way round.
    const marks = lastMessage.locator('mark.detection-ref');
    assert.equal(await marks.count(), 2);
    assert.match(await marks.nth(1).textContent(), /"right block"/);
    await groups.nth(0).locator('rect').hover();
    assert.ok(await marks.nth(0).evaluate((m) => m.classList.contains('active')), 'text of box 0 highlighted');
    await marks.nth(1).hover();
    assert.ok(await groups.nth(1).evaluate((g) => g.classList.contains('active')), 'box 1 highlighted');
    assert.ok(!(await groups.nth(0).evaluate((g) => g.classList.contains('active'))), 'box 0 no longer highlighted');
    await lastMessage.screenshot({ path: path.join(SCREENSHOTS, 'grounding.png') });
    await view.locator('.detections-toggle input').uncheck();
    assert.ok(!(await view.locator('.detections-layer').isVisible()), 'the toggle hides the boxes');
    await view.locator('.detections-toggle input').check();
    // Boxes come back with the conversation after a reload.
    await page.waitForTimeout(300);
    await page.reload();
    await page.locator('#message-list .grounding-view .detection').first().waitFor();
    assert.equal(await page.locator('#message-list .grounding-view .detection').count(), 2);
    await setSettings({ detail: 'auto' });
  });

  await step('a video is taken as its frames, answered by the server and shown as a frame strip', async () => {
    await page.click('#new-chat');
    await page.locator('#drop-zone').waitFor();
    await page.setInputFiles('#file-input', process.env.VIDEO_FILE);
    await page.locator('#attachments .thumb.video img').waitFor({ timeout: 30_000 });
    // 3 s at 2 frames a second.
    assert.equal(await page.textContent('#attachments .thumb.video .frame-count'), '6');
    await ask('What happens in this clip?');
    await expectFinishedAnswer();
    const [video, text] = chatRequests.at(-1).messages.at(-1).content;
    assert.equal(video.type, 'video');
    assert.equal(video.video.length, 6);
    assert.ok(Math.abs(video.fps - 2) < 0.01, `fps ${video.fps}`);
    assert.match(video.video[0], /^data:image\/jpeg;base64,/);
    assert.equal(text.text, 'What happens in this clip?');
    assert.equal(await page.locator('.message.user .video-frames img').count(), 6);
  });

  await step('a Markdown answer downloads as a .md file without its fence', async () => {
    const document = '# Invoice\n\n| item | price |\n|---|---:|\n| tea | 3.50 |';
    await page.route('**/v1/chat/completions', (route) => route.fulfill({
      status: 200,
      headers: { 'Content-Type': 'text/event-stream' },
      body: sseAnswer('```markdown\n' + document + '\n```', { prompt_tokens: 300, completion_tokens: 30, total_tokens: 330 },
        { vision_ms: 90, prefill_ms: 100, decode_ms: 300, cached_prompt_tokens: 0 }),
    }));
    await page.click('#new-chat');
    await page.selectOption('#system-preset', 'markdown');
    await ask('Convert this page.');
    await page.unroute('**/v1/chat/completions');
    assert.ok(chatRequests.at(-1).messages[0].content.startsWith('Convert the document in the image to Markdown'));
    const [download] = await Promise.all([page.waitForEvent('download'), lastMessage.locator('.download-md').click()]);
    assert.match(download.suggestedFilename(), /\.md$/);
    const saved = await readFile(await download.path(), 'utf8');
    assert.equal(saved, document + '\n');
    await page.selectOption('#system-preset', 'general');
  });

  await step('an error response from the server is shown in the conversation with Retry', async () => {
    await page.route('**/v1/chat/completions', (route) => route.fulfill({
      status: 413,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ error: { message: 'image has 50000000 pixels, the limit is 16777216', type: 'invalid_request_error', code: 413 } }),
    }));
    await page.click('#new-chat');
    await ask('This one fails');
    await page.unroute('**/v1/chat/completions');
    const error = page.locator('#message-list .message.error');
    assert.equal(await error.locator('.error-text').textContent(), 'image has 50000000 pixels, the limit is 16777216 (HTTP 413, invalid_request_error)');
    await error.locator('.retry').click();
    await waitIdle();
    await expectFinishedAnswer();
  });

  await step('conversations can be renamed and deleted from the sidebar', async () => {
    const item = sidebarItem('Render test');
    await item.locator('.rename').click();
    await page.fill('.rename-input', 'Rendering check');
    await page.press('.rename-input', 'Enter');
    await sidebarItem('Rendering check').waitFor();
    await sidebarItem('This one fails').locator('.delete').click();
    await page.click('#confirm-ok');
    await sidebarItem('This one fails').waitFor({ state: 'detached' });
    await page.reload();
    await sidebarItem('Rendering check').waitFor();
    assert.equal(await sidebarItem('This one fails').count(), 0);
    // Left: the first conversation, the markdown one, the grounding one, the video one and the
    // Markdown download one.
    assert.equal(await page.locator('.conversation-item').count(), 5);
  });

  await step('export all and import bring a deleted conversation back with its images', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-all')]);
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'glimpse-export-')), download.suggestedFilename());
    await download.saveAs(file);
    const exported = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(exported.format, 'glimpse.conversations');
    assert.equal(exported.conversations.length, 5);
    const clip = exported.conversations.find((c) => c.messages[0].videos);
    assert.equal(clip.messages[0].videos[0].frames.length, 6);
    const main = exported.conversations.find((c) => c.messages[0].text === FIRST_QUESTION);
    assert.equal(main.messages[0].images.length, 2);
    const grounding = exported.conversations.find((c) => c.messages[0].text === 'Locate the two blocks.');
    assert.deepEqual(grounding.messages[1].detections.map((d) => d.label), ['left block', 'right block']);

    await sidebarItem('What is in these two images?').locator('.delete').click();
    await page.click('#confirm-ok');
    await sidebarItem('What is in these two images?').waitFor({ state: 'detached' });
    await page.setInputFiles('#import-file', file);
    await sidebarItem('What is in these two images?').waitFor();
    await page.locator('#message-list .message.user').first().locator('img').nth(1).waitFor();
    await page.setInputFiles('#import-file', file); // importing the same file twice adds nothing
    await page.waitForTimeout(300);
    assert.equal(await page.locator('.conversation-item').count(), 5);
  });

  await step('formulas are typeset with KaTeX and code is coloured by highlight.js, each loaded once it is needed', async () => {
    assert.ok(vendorRequests.includes('/vendor/highlight-11.12.0/highlight.min.js'), 'the html code block loaded highlight.js');
    assert.ok(!vendorRequests.some((p) => p.includes('katex')), 'no formula yet, no KaTeX');
    const answer = [
      'The area of a circle is $A = \\pi r^2$, and \\(e^{i\\pi} + 1 = 0\\). Prices like $5 and $10 stay text.',
      '',
      '$$',
      '\\int_0^1 x^2 \\, dx = \\frac{1}{3}',
      '$$',
      '',
      '\\[ \\sum_{k=1}^{n} k = \\frac{n(n+1)}{2} \\]',
      '',
      '```python',
      'def area(r: float) -> float:',
      '    return 3.14159 * r ** 2  # pi r squared',
      '```',
      '',
      'Not allowed: $\\href{javascript:window.__pwned=5}{click}$.',
    ].join('\n');
    await page.route('**/v1/chat/completions', (route) => route.fulfill({
      status: 200,
      headers: { 'Content-Type': 'text/event-stream' },
      body: sseAnswer(answer, { prompt_tokens: 40, completion_tokens: 90, total_tokens: 130 },
        { vision_ms: 0, prefill_ms: 50, decode_ms: 900, cached_prompt_tokens: 0 }),
    }));
    await page.click('#new-chat');
    await ask('Formula check');
    await page.unroute('**/v1/chat/completions');
    const markdown = lastMessage.locator('.markdown');
    await markdown.locator('.math.typeset').nth(4).waitFor();
    assert.equal(await markdown.locator('.math').count(), 5);
    assert.equal(await markdown.locator('.math.typeset').count(), 5);
    assert.equal(await markdown.locator('div.math.display .katex-display').count(), 2);
    assert.equal(await markdown.locator('span.math .katex').count(), 3);
    // KaTeX writes MathML beside its HTML: the formula is readable by screen readers and copy.
    assert.equal(await markdown.locator('.math annotation').first().textContent(), 'A = \\pi r^2');
    assert.match(await markdown.locator('p').first().textContent(), /Prices like \$5 and \$10 stay text\./);
    // trust is off: \href is an error, not a link.
    assert.equal(await markdown.locator('a').count(), 0);
    assert.equal(await markdown.locator('.math').nth(4).locator('.katex-error, [style*="color"]').count() > 0, true);
    await markdown.locator('.code-block code.hljs .hljs-keyword').first().waitFor();
    assert.deepEqual(await markdown.locator('.code-block code .hljs-keyword').allTextContents(), ['def', 'return']);
    assert.equal(await markdown.locator('.code-block code').textContent(), 'def area(r: float) -> float:\n    return 3.14159 * r ** 2  # pi r squared');
    // The KaTeX fonts came from the server: the typeset formula is drawn in KaTeX_Main / KaTeX_Math.
    await page.evaluate(() => document.fonts.ready);
    assert.ok(await page.evaluate(() => document.fonts.check('16px KaTeX_Main') && document.fonts.check('16px KaTeX_Math')));
    const fonts = vendorRequests.filter((p) => p.endsWith('.woff2'));
    assert.ok(fonts.length >= 2 && fonts.every((p) => p.startsWith('/vendor/katex-0.19.1/fonts/')), fonts.join(', '));
    for (const file of ['katex.min.js', 'katex.min.css']) {
      assert.equal(vendorRequests.filter((p) => p === '/vendor/katex-0.19.1/' + file).length, 1, file + ' fetched once');
    }
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    await lastMessage.screenshot({ path: path.join(SCREENSHOTS, 'formulas-light.png'), animations: 'disabled' });
    await page.emulateMedia({ colorScheme: 'dark' });
    await lastMessage.screenshot({ path: path.join(SCREENSHOTS, 'formulas-dark.png'), animations: 'disabled' });
    await page.emulateMedia({ colorScheme: 'light' });
  });

  await step('a thinking model\'s reasoning_content streams into the thinking panel, apart from the answer', async () => {
    const reasoning = 'The user asks for 2 + 2. Adding gives 4.';
    await page.route('**/v1/chat/completions', (route) => route.fulfill({
      status: 200,
      headers: { 'Content-Type': 'text/event-stream' },
      body: sseThinkingAnswer(reasoning, 'The answer is **4**.'),
    }));
    await page.click('#new-chat');
    await ask('What is 2 + 2?');
    await page.unroute('**/v1/chat/completions');
    const thinking = lastMessage.locator('details.thinking');
    assert.equal(await thinking.locator('summary').textContent(), 'Thoughts');
    assert.equal(await thinking.locator('.thinking-text').textContent(), reasoning);
    assert.deepEqual(await lastMessage.locator('.markdown > :not(details)').allTextContents(), ['The answer is 4.']);
    assert.equal(await lastMessage.locator('.markdown strong').textContent(), '4');
    await thinking.locator('summary').click();
    await lastMessage.screenshot({ path: path.join(SCREENSHOTS, 'thinking.png'), animations: 'disabled' });
    await page.reload();
    await lastMessage.locator('details.thinking').waitFor();
    assert.equal(await lastMessage.locator('details.thinking .thinking-text').textContent(), reasoning, 'kept after a reload');
  });

  await step('screenshots at desktop and phone width, light and dark', async () => {
    const shot = (name) => page.screenshot({ path: path.join(SCREENSHOTS, name), animations: 'disabled' });
    await page.locator('#toast').waitFor({ state: 'hidden', timeout: 10_000 });
    await sidebarItem('What is in these two images?').locator('.conversation-open').click();
    await page.waitForFunction(() => [...document.querySelectorAll('#message-list img')].every((img) => img.complete));
    await shot('desktop-light.png');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot('desktop-dark.png');
    await sidebarItem('Rendering check').locator('.conversation-open').click();
    await shot('desktop-dark-markdown.png');
    await page.emulateMedia({ colorScheme: 'light' });
    await shot('desktop-light-markdown.png');

    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator('#toggle-sidebar').waitFor();
    await page.waitForTimeout(300); // the drawer slides out
    assert.equal(await page.locator('#sidebar').evaluate((node) => node.getBoundingClientRect().right <= 0), true, 'sidebar is off-screen on a phone');
    await page.click('#toggle-sidebar');
    await page.waitForTimeout(300);
    await shot('phone-sidebar.png');
    await sidebarItem('What is in these two images?').locator('.conversation-open').click();
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, 'no sideways scrolling');
    assert.ok(await page.locator('#prompt').isVisible() && await page.locator('#send').isVisible());
    await shot('phone-light.png');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot('phone-dark.png');
  });

  await step('no script errors and no request left the server origin', async () => {
    assert.deepEqual(problems, []);
    assert.deepEqual(foreignRequests, []);
  });
  console.log(`all ${stepNumber} steps passed; screenshots in ${path.relative(process.cwd(), SCREENSHOTS) || '.'}`);
  // The plain closing line scripts/test.sh counts (scripts/cross_common.sh count_tests).
  console.log(`browser: ${stepNumber} passed, 0 failed`);
} catch (err) {
  await page.screenshot({ path: path.join(SCREENSHOTS, 'failure.png') }).catch(() => {});
  console.error(err);
  if (problems.length) console.error('page problems:\n  ' + problems.join('\n  '));
  process.exitCode = 1;
} finally {
  await browser.close();
}
