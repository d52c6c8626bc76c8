// The open conversation on screen: title, system prompt bar, and the messages (questions with
// their images, answers as markdown with thinking, grounding overlay, badges, timings and
// actions, errors with Retry), redrawn as an answer streams in, and kept scrolled to the bottom.
import { copyButton, dom, download, el, icon, iconButton, showImage } from './dom.js';
import { slug } from './format.js';
import { imagesBefore } from './grounding.js';
import { renderMarkdown } from './markdown-view.js';
import { progressView, splitThinking, stripMarkdownFence, timingsText, timingsTitle, titleFor } from './messages.js';
import { groundingView, markDetectionText } from './overlay.js';
import { MARKDOWN_PRESETS, systemPromptText } from './presets.js';
import { actions, isSaved, state } from './state.js';

export function renderHeader() {
  const title = titleFor(state.current);
  dom.title.textContent = title;
  document.title = state.current.messages.length ? `${title} · glimpse` : 'glimpse';
  dom.exportOne.disabled = !isSaved(state.current);
}

export function renderSystem() {
  const { preset, custom } = state.current.system;
  dom.presetSelect.value = preset;
  const isCustom = preset === 'custom';
  dom.systemCustom.hidden = !isCustom;
  if (isCustom && dom.systemCustom.value !== custom) dom.systemCustom.value = custom;
  const text = systemPromptText(state.current.system);
  dom.systemText.hidden = isCustom;
  dom.systemText.textContent = text || 'The model answers without a system prompt.';
  dom.systemText.classList.toggle('muted', !text);
}

export function renderMessages() {
  const conversation = state.current;
  dom.emptyState.hidden = conversation.messages.length > 0;
  dom.messageList.replaceChildren(...conversation.messages.map((message, index) => messageNode(message, index, conversation)));
  scrollToBottom(true);
}

function messageNode(message, index, conversation) {
  if (message.role === 'user') return userMessage(message);
  if (message.role === 'error') {
    return el('div', { class: 'message error', 'data-role': 'error' },
      el('div', { class: 'error-box' },
        el('strong', { text: 'Error' }), el('span', { class: 'error-text', text: message.text }),
        index === conversation.messages.length - 1 && !state.generation
          ? el('button', { type: 'button', class: 'button small ghost retry', onclick: () => actions.retry() }, icon('retry'), 'Retry')
          : null));
  }
  const body = el('div', { class: 'markdown' });
  const node = el('div', { class: 'message assistant', 'data-role': 'assistant' }, body, el('div', { class: 'message-meta' }));
  fillAssistant(node, message, index === conversation.messages.length - 1);
  return node;
}

function userMessage(message) {
  const images = message.images.length
    ? el('div', { class: 'message-images' }, ...message.images.map((image) => el('img', {
      src: image.dataUrl, alt: image.name, title: `${image.name} · ${image.width}×${image.height}`,
      loading: 'lazy', onclick: () => showImage(image.dataUrl, image.name),
    })))
    : null;
  // A video shows as the strip of frames the model was given.
  const videos = (message.videos || []).map((video) => el('div', {
    class: 'video-frames', title: `${video.name} · ${video.frames.length} frames, ${video.width}×${video.height}`,
  }, ...video.frames.map((frame, i) => el('img', {
    src: frame, alt: `${video.name}, frame ${i + 1}`, loading: 'lazy', onclick: () => showImage(frame, `${video.name}, frame ${i + 1}`),
  }))));
  return el('div', { class: 'message user', 'data-role': 'user' },
    el('div', { class: 'bubble' }, images, ...videos, message.text ? el('div', { class: 'user-text', text: message.text }) : null));
}

// (Re)draws an answer into its node: while it streams, and once more when it is done.
function fillAssistant(node, message, isLast) {
  const streaming = state.generation && state.generation.message === message;
  const [body, meta] = node.children;
  const { thinking, answer, open } = splitThinking(message.text);
  const reasoning = [message.reasoning, thinking].filter(Boolean).join('\n');
  const content = [];
  if (reasoning) {
    const details = el('details', { class: 'thinking' }, el('summary', { text: streaming && (open || !answer) ? 'Thinking…' : 'Thoughts' }),
      el('div', { class: 'thinking-text', text: reasoning }));
    if (streaming && (open || !answer)) details.open = true;
    content.push(details);
  }
  const rendered = renderMarkdown(answer);
  content.push(rendered);
  if (message.detections && message.detections.length) {
    const view = groundingView(message, imagesBefore(state.current.messages, message));
    if (view) {
      content.push(view);
      markDetectionText(rendered, message);
    }
  }
  body.replaceChildren(...content);
  body.classList.toggle('streaming', Boolean(streaming));
  if (streaming && !message.text && !message.reasoning) {
    const hasImages = state.current.messages.some((m) => m.role === 'user' && m.images.length);
    const progress = message.progress ? progressView(message.progress) : null;
    body.replaceChildren(el('div', { class: 'typing' }, el('span'), el('span'), el('span'),
      el('em', { text: progress ? progress.label : hasImages ? 'Looking at the images…' : 'Thinking…' })));
    if (progress) {
      body.append(el('progress', { class: 'prompt-progress', max: 1000, value: Math.round(progress.fraction * 1000) }));
    }
  }
  node.classList.toggle('streaming', Boolean(streaming));
  meta.replaceChildren();
  const oldError = node.querySelector(':scope > .error-box');
  if (oldError) oldError.remove();
  if (streaming) return;
  const items = [];
  if (message.stopped) items.push(el('span', { class: 'badge', text: 'Stopped' }));
  if (message.finishReason === 'length') items.push(el('span', { class: 'badge', text: 'Max tokens reached', title: 'Raise “Max tokens” in Settings for longer answers' }));
  const stats = timingsText(message);
  if (stats) items.push(el('span', { class: 'timings', text: stats, title: timingsTitle(message) }));
  const preset = state.current && state.current.system.preset;
  meta.append(...items, el('span', { class: 'meta-actions' },
    copyButton(() => message.text, 'Copy answer'),
    MARKDOWN_PRESETS.has(preset)
      ? iconButton('download', 'Download as Markdown (.md)', () => download(`${slug(state.current.title)}.md`, stripMarkdownFence(message.text) + '\n', 'text/markdown'), 'download-md')
      : null,
    isLast && !state.generation ? iconButton('retry', 'Regenerate', () => actions.retry(), 'regenerate') : null));
  if (message.error) meta.after(el('div', { class: 'error-box inline' }, el('strong', { text: 'Error' }), el('span', { class: 'error-text', text: message.error })));
}

let renderQueued = false;
/** Redraws the streaming answer at the next frame (once per frame however many chunks arrive). */
export function scheduleStreamRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const generation = state.generation;
    if (!generation || generation.conversation !== state.current) return;
    const node = dom.messageList.lastElementChild;
    if (!node || !node.classList.contains('assistant')) return;
    const stick = isNearBottom();
    fillAssistant(node, generation.message, true);
    if (stick) scrollToBottom(false);
  });
}

function isNearBottom() {
  const m = dom.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function scrollToBottom(force) {
  if (force || isNearBottom()) dom.messages.scrollTop = dom.messages.scrollHeight;
}
