// The conversation list in the sidebar (open, rename in place, delete) and the sidebar's
// drawer behaviour on narrow screens.
import { renderHeader } from './conversation-view.js';
import { dom, el, iconButton } from './dom.js';
import { relativeTime } from './format.js';
import { titleFor } from './messages.js';
import { actions, state } from './state.js';

export function renderSidebar() {
  dom.list.replaceChildren(...state.conversations.map(conversationItem));
  dom.listEmpty.hidden = state.conversations.length > 0;
  dom.exportAll.disabled = state.conversations.length === 0;
}

function conversationItem(conversation) {
  const title = el('span', { class: 'conversation-title', text: titleFor(conversation) });
  const open = el('button', { type: 'button', class: 'conversation-open', onclick: () => actions.open(conversation) },
    title, el('span', { class: 'conversation-meta', text: relativeTime(conversation.updatedAt) }));
  const item = el('li', {
    class: 'conversation-item' + (conversation === state.current ? ' active' : ''),
    'data-conversation-id': conversation.id,
  }, open,
  el('span', { class: 'conversation-actions' },
    iconButton('pencil', 'Rename', () => startRename(item, conversation), 'rename'),
    iconButton('trash', 'Delete', () => actions.remove(conversation), 'delete')));
  return item;
}

// Replaces the item by a text field; Enter or leaving it renames, Escape cancels.
function startRename(item, conversation) {
  const input = el('input', { class: 'rename-input', 'aria-label': 'Conversation name', maxlength: 120 });
  input.value = titleFor(conversation);
  let finished = false;
  const finish = async (commit) => {
    if (finished) return;
    finished = true;
    const name = input.value.trim();
    if (commit && name && name !== titleFor(conversation)) {
      conversation.title = name;
      await actions.persist(conversation);
      renderHeader();
    } else {
      renderSidebar();
    }
  };
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') { event.preventDefault(); finish(true); }
    if (event.key === 'Escape') { event.preventDefault(); finish(false); }
  });
  input.addEventListener('blur', () => finish(true));
  item.replaceChildren(input);
  input.focus();
  input.select();
}

export function openSidebar() {
  dom.sidebar.classList.add('open');
  dom.scrim.hidden = false;
}

export function closeSidebar() {
  dom.sidebar.classList.remove('open');
  dom.scrim.hidden = true;
}
