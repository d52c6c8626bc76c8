// The page's shared state (conversations, the open one, the composer's pending images, the
// running generation, settings, what the server announced), and `actions`: the controller
// functions views call from their buttons, filled in by app.js so views need not import them.
import { newId } from './format.js';
import { lastSystem, loadSettings } from './settings.js';

export const state = {
  conversations: [], // saved ones, newest first
  current: null, // the open conversation; a draft (not saved, not listed) until its first message
  pending: [], // attachments in the composer: { id, name, image? }
  generation: null, // { conversation, message, controller }
  settings: loadSettings(),
  // budgetPixels: the server resizes images to at most this many pixels, so larger uploads are wasted;
  // maxPixels: the server refuses larger images. Both optional (null when not announced).
  server: { state: 'unknown', model: null, budgetPixels: null, maxPixels: null, detail: '' },
};

export const actions = {
  open: null, // (conversation) shows a conversation
  remove: null, // async (conversation) deletes one, after asking
  persist: null, // async (conversation) saves one and redraws the sidebar
  retry: null, // async () answers the last question again
};

export function newConversation() {
  const now = Date.now();
  return { id: newId(), title: '', createdAt: now, updatedAt: now, system: lastSystem(), messages: [] };
}

export function isSaved(conversation) {
  return state.conversations.includes(conversation);
}
