// The conversation's messages and the chat API's data: building a request's `messages` from a
// conversation, folding streamed chunks into the answer, and the texts the page derives from
// messages (title, thinking split, timings line, Markdown without its fence).
// Pure (no DOM, no globals), so Node tests import it.
//
// A conversation: { id, title, createdAt, updatedAt, system: { preset, custom }, messages }.
// A message: { role: 'user', text, images: [{ name, dataUrl, width, height }],
// videos?: [{ name, frames: [dataUrl], fps, width, height }] }, or
// { role: 'assistant', text, reasoning?, finishReason?, usage?, timings?, detections?, stopped?,
// error?, elapsedMs? }, or { role: 'error', text }; each with createdAt.
import { cleanDetections } from './grounding.js';
import { formatMs, formatRate } from './format.js';
import { systemPromptText } from './presets.js';

/** The request's `messages` for `conversation`; `detail` is the image detail setting ('auto', 'low', 'high'). */
export function requestMessages(conversation, detail) {
  const out = [];
  const system = systemPromptText(conversation.system);
  if (system) out.push({ role: 'system', content: system });
  for (const message of conversation.messages) {
    if (message.role === 'user') {
      const videos = message.videos || [];
      if (message.images.length === 0 && videos.length === 0) {
        out.push({ role: 'user', content: message.text });
      } else {
        const extra = detail !== 'auto' ? { detail } : {};
        const parts = message.images.map((image) => ({ type: 'image_url', image_url: { url: image.dataUrl, ...extra } }));
        // A video goes as its frames (taken in the browser), as qwen-vl-utils sends them.
        for (const video of videos) parts.push({ type: 'video', video: video.frames, fps: video.fps });
        if (message.text) parts.push({ type: 'text', text: message.text });
        out.push({ role: 'user', content: parts });
      }
    } else if (message.role === 'assistant' && message.text) {
      out.push({ role: 'assistant', content: message.text });
    }
  }
  return out;
}

/**
 * Adds a `chat.completion.chunk` (or a whole `chat.completion`) to the answer `message`: its text
 * and reasoning, finish reason, usage, timings, and the detections completed by this chunk.
 */
export function applyChunk(message, chunk) {
  const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : null;
  if (choice) {
    const delta = choice.delta || choice.message || {};
    if (typeof delta.content === 'string') message.text += delta.content;
    if (typeof delta.reasoning_content === 'string') message.reasoning = (message.reasoning || '') + delta.reasoning_content;
    if (choice.finish_reason) message.finishReason = String(choice.finish_reason);
  }
  if (chunk.usage && typeof chunk.usage === 'object') {
    const { prompt_tokens: prompt, completion_tokens: completion } = chunk.usage;
    message.usage = { prompt_tokens: Number(prompt) || 0, completion_tokens: Number(completion) || 0 };
  }
  if (chunk.glimpse && Array.isArray(chunk.glimpse.detections)) {
    const found = cleanDetections(chunk.glimpse.detections);
    if (found.length) message.detections = [...(message.detections || []), ...found];
  }
  if (chunk.prompt_progress && typeof chunk.prompt_progress === 'object') {
    const p = chunk.prompt_progress;
    const count = (v) => Math.max(0, Number(v) || 0);
    message.progress = {
      processed: count(p.processed), total: count(p.total), cache: count(p.cache),
      images: count(p.images), imagesEncoded: count(p.images_encoded),
    };
  }
  if (chunk.timings && typeof chunk.timings === 'object') {
    const t = chunk.timings;
    message.timings = {
      vision_ms: Number(t.vision_ms) || 0, prefill_ms: Number(t.prefill_ms) || 0,
      decode_ms: Number(t.decode_ms) || 0, cached_prompt_tokens: Number(t.cached_prompt_tokens) || 0,
    };
  }
}

/**
 * What the pending answer's progress bar shows while the prompt is read: the fraction done
 * (images first, then the prompt tokens not taken from the cache) and a label.
 */
export function progressView(progress) {
  const { processed, total, cache, images, imagesEncoded } = progress;
  if (images > 0 && imagesEncoded < images) {
    const label = images === 1 ? 'Looking at the image…' : `Looking at the images (${imagesEncoded + 1} of ${images})…`;
    return { fraction: imagesEncoded / images, label };
  }
  const todo = Math.max(1, total - cache);
  const done = Math.min(todo, Math.max(0, processed - cache));
  return { fraction: done / todo, label: `Reading the prompt (${Math.round((100 * done) / todo)}%)…` };
}

/** The sidebar and header title: the given name, else the first line of the first question. */
export function titleFor(conversation) {
  if (conversation.title) return conversation.title;
  const first = conversation.messages.find((m) => m.role === 'user');
  if (!first) return 'New chat';
  const text = first.text.trim().split('\n')[0];
  if (text) return text.length > 48 ? text.slice(0, 47) + '…' : text;
  const count = first.images.length;
  return count === 1 ? 'Image' : count + ' images';
}

/** A leading <think>…</think> block apart from the answer; `open` while it is not closed yet. */
export function splitThinking(text) {
  const match = /^\s*<think>([\s\S]*?)(<\/think>|$)/.exec(text);
  if (!match) return { thinking: '', answer: text };
  return { thinking: match[1].trim(), answer: text.slice(match[0].length).trimStart(), open: !match[2] };
}

// A whole-document Markdown answer without the ```markdown fence the model may wrap it in
// (as src/chat/presets.rs strip_markdown_fence).
export function stripMarkdownFence(text) {
  const trimmed = text.trim();
  const match = /^```(markdown|md)?[ \t]*\n([\s\S]*?)\n?```$/.exec(trimmed);
  return match && !match[2].includes('\n```\n') ? match[2] : trimmed;
}

/** The line under an answer: stage times and rates, and its token count. */
export function timingsText(message) {
  const t = message.timings;
  const u = message.usage;
  const parts = [];
  if (t) {
    if (t.vision_ms > 0) parts.push(`vision ${formatMs(t.vision_ms)}`);
    const prefilled = u ? u.prompt_tokens - t.cached_prompt_tokens : 0;
    if (t.prefill_ms > 0 && prefilled > 0) parts.push(`prefill ${formatRate(prefilled / t.prefill_ms * 1000)} tok/s`);
    if (t.decode_ms > 0 && u && u.completion_tokens > 0) parts.push(`decode ${formatRate(u.completion_tokens / t.decode_ms * 1000)} tok/s`);
  }
  if (u) parts.push(`${u.completion_tokens} tokens`);
  else if (message.elapsedMs && message.stopped) parts.push(`after ${formatMs(message.elapsedMs)}`);
  return parts.join(' · ');
}

/** The tooltip of that line: the raw numbers. */
export function timingsTitle(message) {
  const t = message.timings;
  const u = message.usage;
  const lines = [];
  if (u) lines.push(`prompt ${u.prompt_tokens} tokens, answer ${u.completion_tokens} tokens`);
  if (t) lines.push(`vision ${t.vision_ms} ms, prefill ${t.prefill_ms} ms, decode ${t.decode_ms} ms, cached prompt ${t.cached_prompt_tokens} tokens`);
  return lines.join('\n');
}
