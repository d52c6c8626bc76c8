// The export file format ("glimpse.conversations", version 1) and the checks that turn an
// imported file, or what IndexedDB returned, back into well-formed conversations.
// Pure (no DOM, no globals), so Node tests import it.
import { newId } from './format.js';
import { applyChunk } from './messages.js';
import { DEFAULT_PRESET, isPreset } from './presets.js';

export const EXPORT_FORMAT = 'glimpse.conversations';

export function exportData(conversations) {
  return { format: EXPORT_FORMAT, version: 1, exported_at: new Date().toISOString(), conversations };
}

// Only base64 image data URLs: an imported file cannot make the page load anything else.
function cleanImage(raw) {
  if (!raw || typeof raw.dataUrl !== 'string' || !/^data:image\/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=\s]*$/i.test(raw.dataUrl)) return null;
  return { name: String(raw.name || 'image'), dataUrl: raw.dataUrl, width: Number(raw.width) || 0, height: Number(raw.height) || 0 };
}

// A video: its frames as image data URLs (at least two) and the rate they were taken at.
function cleanVideo(raw) {
  if (!raw || !Array.isArray(raw.frames)) return null;
  const frames = raw.frames.map((dataUrl) => cleanImage({ dataUrl })).filter(Boolean).map((f) => f.dataUrl);
  const fps = Number(raw.fps);
  if (frames.length < 2 || frames.length !== raw.frames.length || !(fps > 0)) return null;
  return { name: String(raw.name || 'video'), frames, fps, width: Number(raw.width) || 0, height: Number(raw.height) || 0 };
}

function cleanMessage(raw) {
  if (!raw || !['user', 'assistant', 'error'].includes(raw.role)) return null;
  const message = { role: raw.role, text: String(raw.text ?? ''), createdAt: Number(raw.createdAt) || Date.now() };
  if (raw.role === 'user') {
    message.images = (Array.isArray(raw.images) ? raw.images : []).map(cleanImage).filter(Boolean);
    const videos = (Array.isArray(raw.videos) ? raw.videos : []).map(cleanVideo).filter(Boolean);
    if (videos.length) message.videos = videos;
  }
  if (raw.role === 'assistant') {
    for (const key of ['reasoning', 'finishReason', 'error']) if (raw[key]) message[key] = String(raw[key]);
    if (raw.stopped) message.stopped = true;
    if (Number(raw.elapsedMs) > 0) message.elapsedMs = Number(raw.elapsedMs);
    if (raw.usage) applyChunk(message, { usage: raw.usage });
    if (raw.timings) applyChunk(message, { timings: raw.timings });
    if (Array.isArray(raw.detections)) applyChunk(message, { glimpse: { detections: raw.detections } });
  }
  return message;
}

/** A conversation rebuilt from untrusted data, or null when it is not one. */
export function cleanConversation(raw) {
  if (!raw || typeof raw !== 'object' || !Array.isArray(raw.messages)) return null;
  const preset = raw.system && isPreset(raw.system.preset) ? raw.system.preset : DEFAULT_PRESET;
  return {
    id: typeof raw.id === 'string' && raw.id ? raw.id : newId(),
    title: String(raw.title || ''),
    createdAt: Number(raw.createdAt) || Date.now(),
    updatedAt: Number(raw.updatedAt) || Date.now(),
    system: { preset, custom: String((raw.system && raw.system.custom) || '') },
    messages: raw.messages.map(cleanMessage).filter(Boolean),
  };
}

/** The conversations of a parsed import file: an export, a bare list, or a single conversation. */
export function importedConversations(parsed) {
  const raws = Array.isArray(parsed) ? parsed : Array.isArray(parsed && parsed.conversations) ? parsed.conversations : [parsed];
  return raws.map(cleanConversation).filter(Boolean);
}
