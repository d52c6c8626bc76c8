// Conversations as a whole: saving (IndexedDB, newest first in the sidebar), opening one,
// deleting, loading the saved ones at start, and export / import as JSON files.
import { updateComposer } from './composer.js';
import { renderHeader, renderMessages, renderSystem } from './conversation-view.js';
import { confirmAction, dom, download, toast } from './dom.js';
import { newId, slug } from './format.js';
import { titleFor } from './messages.js';
import { STORAGE_KEYS } from './settings.js';
import { closeSidebar, renderSidebar } from './sidebar.js';
import { isSaved, newConversation, state } from './state.js';
import { store } from './store.js';
import { cleanConversation, exportData, importedConversations } from './transfer.js';

/** Saves `conversation` (listing it if it was a draft) and redraws the sidebar. */
export async function persist(conversation) {
  conversation.updatedAt = Date.now();
  if (!isSaved(conversation)) state.conversations.unshift(conversation);
  state.conversations.sort((a, b) => b.updatedAt - a.updatedAt);
  if (conversation === state.current) localStorage.setItem(STORAGE_KEYS.current, conversation.id);
  try {
    await store.put(conversation);
  } catch (err) {
    toast('Could not save the conversation in this browser: ' + (err && err.message), 'error');
  }
  renderSidebar();
}

export function openConversation(conversation) {
  state.current = conversation;
  if (isSaved(conversation)) localStorage.setItem(STORAGE_KEYS.current, conversation.id);
  renderSidebar();
  renderHeader();
  renderSystem();
  renderMessages();
  updateComposer();
  closeSidebar();
  if (window.matchMedia('(hover: hover)').matches) dom.prompt.focus({ preventScroll: true });
}

export async function deleteConversation(conversation) {
  if (!(await confirmAction(`Delete “${titleFor(conversation)}”? This cannot be undone.`))) return;
  if (state.generation && state.generation.conversation === conversation) state.generation.controller.abort();
  state.conversations = state.conversations.filter((c) => c !== conversation);
  try {
    await store.remove(conversation.id);
  } catch (err) {
    toast('Could not delete from browser storage: ' + (err && err.message), 'error');
  }
  if (state.current === conversation) openConversation(state.conversations[0] || newConversation());
  else renderSidebar();
}

/** Loads the saved conversations and opens the one open last (or a new one). */
export async function loadConversations() {
  try {
    state.conversations = (await store.all()).map(cleanConversation).filter(Boolean).sort((a, b) => b.updatedAt - a.updatedAt);
  } catch (err) {
    toast('Saved conversations are unavailable (browser storage is blocked): ' + (err && err.message), 'error');
  }
  const lastId = localStorage.getItem(STORAGE_KEYS.current);
  openConversation(state.conversations.find((c) => c.id === lastId) || newConversation());
}

export function exportCurrent() {
  download(`glimpse-${slug(titleFor(state.current))}.json`, exportData([state.current]));
}

export function exportAll() {
  download(`glimpse-conversations-${new Date().toISOString().slice(0, 10)}.json`, exportData(state.conversations));
}

/** Adds the conversations of an export file; a conversation already here is skipped, a changed one kept as a copy. */
export async function importFile(file) {
  let parsed;
  try {
    parsed = JSON.parse(await file.text());
  } catch (err) {
    toast(`“${file.name}” is not valid JSON: ${err.message}`, 'error');
    return;
  }
  const conversations = importedConversations(parsed);
  if (conversations.length === 0) {
    toast(`“${file.name}” holds no glimpse conversations.`, 'error');
    return;
  }
  let added = 0;
  for (const conversation of conversations) {
    const existing = state.conversations.find((c) => c.id === conversation.id);
    if (existing && existing.updatedAt === conversation.updatedAt) continue; // already here
    if (existing) conversation.id = newId(); // keep both versions
    state.conversations.push(conversation);
    await store.put(conversation).catch((err) => toast('Could not save an imported conversation: ' + err.message, 'error'));
    added++;
  }
  state.conversations.sort((a, b) => b.updatedAt - a.updatedAt);
  toast(added ? `Imported ${added} conversation${added === 1 ? '' : 's'}.` : 'These conversations are already here.');
  if (added) openConversation(conversations.find((c) => isSaved(c)) || state.current);
}
