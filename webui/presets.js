// System prompt presets offered per conversation. The Locate and Markdown texts are the same as
// src/chat/presets.rs (a Rust test include_str!s this file to keep them equal). Pure data.

export const PRESETS = [
  { id: 'general', name: 'General assistant', text: 'You are a helpful assistant.' },
  {
    id: 'ocr', name: 'OCR — transcribe all text',
    text: 'Transcribe all text in the image exactly as it appears: keep the original wording, spelling, '
      + 'punctuation, numbers and line breaks, in reading order. Use a Markdown table for tables. '
      + 'Output only the transcription, with no comments.',
  },
  {
    id: 'describe', name: 'Detailed description',
    text: 'Describe the image in detail: the main subjects and what they are doing, their appearance and '
      + 'position, the setting, colours and lighting, any visible text, and anything unusual. '
      + 'Describe only what is visible; say so when something is unclear.',
  },
  {
    id: 'short', name: 'Short visual answers',
    text: 'Answer questions about the image as briefly as possible: a word, a number or one short sentence. '
      + 'Do not explain unless asked.',
  },
  // The same texts as src/chat/presets.rs (a Rust test keeps them equal).
  { id: 'locate', name: 'Locate objects (boxes)', text: "Locate the objects the user asks about. Answer with a JSON list in a ```json code block, one entry per instance: {\"bbox_2d\": [x1, y1, x2, y2], \"label\": \"name\"}, with coordinates on a 0-1000 scale relative to the image width and height; use {\"point_2d\": [x, y], \"label\": \"name\"} when asked to point at things." },
  { id: 'markdown', name: 'Document → Markdown', text: "Convert the document in the image to Markdown. Keep the reading order, headings, paragraphs, lists and tables (as Markdown tables), and transcribe all text exactly. Output only the Markdown, with no comments." },
  { id: 'none', name: 'No system prompt', text: '' },
  { id: 'custom', name: 'Custom', text: '' },
];
export const DEFAULT_PRESET = 'general';
// Presets whose answers get a "Download .md" button.
export const MARKDOWN_PRESETS = new Set(['markdown', 'ocr']);

export function isPreset(id) {
  return PRESETS.some((p) => p.id === id);
}

/** The system prompt of a conversation's `system` choice ({ preset, custom }); '' for none. */
export function systemPromptText(system) {
  const { preset, custom } = system;
  if (preset === 'custom') return custom.trim();
  const found = PRESETS.find((p) => p.id === preset);
  return found ? found.text : '';
}
