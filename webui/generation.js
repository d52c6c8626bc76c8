// Asking the model: sending the composer's question with its images, streaming the answer into
// the conversation, Stop, and Retry / Regenerate of the last answer.
import { chatStream, describeError } from './api.js';
import { renderAttachments } from './attachments.js';
import { autoGrow, updateComposer } from './composer.js';
import { persist } from './conversations.js';
import { renderHeader, renderMessages, scheduleStreamRender } from './conversation-view.js';
import { dom } from './dom.js';
import { applyChunk, requestMessages } from './messages.js';
import { refreshServer } from './server.js';
import { isSaved, state } from './state.js';

// Appends an answer to `conversation` and streams it in; the answer keeps what arrived when
// stopped, and becomes an error message when nothing did.
async function generate(conversation) {
  const body = {
    model: state.server.model || 'glimpse',
    messages: requestMessages(conversation, state.settings.detail),
    stream: true,
    stream_options: { include_usage: true },
    return_progress: true,
    temperature: state.settings.temperature,
    max_tokens: state.settings.maxTokens,
  };
  const message = { role: 'assistant', text: '', createdAt: Date.now() };
  const controller = new AbortController();
  conversation.messages.push(message);
  state.generation = { conversation, message, controller };
  renderMessages();
  updateComposer();
  const started = performance.now();
  try {
    for await (const chunk of chatStream(body, { signal: controller.signal, apiKey: state.settings.apiKey })) {
      applyChunk(message, chunk);
      scheduleStreamRender();
    }
    if (!message.finishReason && !controller.signal.aborted) {
      message.error = 'The server closed the stream before the answer was complete.';
    }
  } catch (err) {
    if (controller.signal.aborted) message.stopped = true;
    else message.error = describeError(err);
    if (err.status === 401) refreshServer();
  }
  if (controller.signal.aborted) message.stopped = true;
  message.elapsedMs = Math.round(performance.now() - started);
  delete message.progress;
  if (message.error && !message.text && !message.reasoning) {
    message.role = 'error';
    message.text = message.error;
    delete message.error;
  }
  state.generation = null;
  const deleted = !isSaved(conversation) && state.current !== conversation;
  if (!deleted) await persist(conversation);
  if (state.current === conversation) renderMessages();
  updateComposer();
}

export function stopGeneration() {
  if (state.generation) state.generation.controller.abort();
}

/** Sends the composer's text, images and videos (once every one is ready) and answers them. */
export async function send() {
  if (state.generation || state.pending.some((entry) => !entry.image && !entry.video)) return;
  const text = dom.prompt.value.trim();
  const images = state.pending.filter((entry) => entry.image).map((entry) => entry.image);
  const videos = state.pending.filter((entry) => entry.video).map((entry) => entry.video);
  if (!text && images.length === 0 && videos.length === 0) return;
  const conversation = state.current;
  const message = { role: 'user', text, images, createdAt: Date.now() };
  if (videos.length) message.videos = videos;
  conversation.messages.push(message);
  dom.prompt.value = '';
  autoGrow();
  state.pending = [];
  renderAttachments();
  await persist(conversation);
  renderHeader();
  await generate(conversation);
}

/** Drops the last answer (or error) and asks again. */
export async function retryLast() {
  const conversation = state.current;
  if (state.generation) return;
  const last = conversation.messages[conversation.messages.length - 1];
  if (last && (last.role === 'assistant' || last.role === 'error')) conversation.messages.pop();
  await generate(conversation);
}
