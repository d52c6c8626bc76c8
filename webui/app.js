// glimpse web chat, entry module (index.html loads it as <script type="module">): wires the
// page's controls to the modules and starts the page. What each module does:
//   markdown.js, grounding.js, messages.js, presets.js, transfer.js, format.js  pure logic (Node tests in test/)
//   api.js            the server's HTTP API and its SSE stream
//   dom.js            element helpers, toasts, dialogs;  markdown-view.js, overlay.js  answers on screen
//   state.js          shared state;  store.js  IndexedDB;  settings.js  settings and their dialog
//   conversations.js  save / open / delete / import / export;  generation.js  send, stream, stop, retry
//   conversation-view.js, sidebar.js, composer.js, attachments.js, server.js  the parts of the page
// Layout is in index.html, looks in style.css. No framework, no build step, no network access
// beyond the serving origin.
import { bindAttachmentInputs } from './attachments.js';
import { autoGrow, updateComposer } from './composer.js';
import { renderSystem } from './conversation-view.js';
import {
  deleteConversation, exportAll, exportCurrent, importFile, loadConversations, openConversation, persist,
} from './conversations.js';
import { dom, el } from './dom.js';
import { retryLast, send, stopGeneration } from './generation.js';
import { PRESETS } from './presets.js';
import { refreshServer } from './server.js';
import {
  fillDetailOptions, openSettingsDialog, rememberSystem, saveSettings, settingsFromDialog,
} from './settings.js';
import { closeSidebar, openSidebar } from './sidebar.js';
import { actions, isSaved, newConversation, state } from './state.js';

Object.assign(actions, { open: openConversation, remove: deleteConversation, persist, retry: retryLast });

function openSettings() {
  openSettingsDialog(state.settings, state.server);
}

function saveSettingsFromDialog() {
  state.settings = settingsFromDialog();
  saveSettings(state.settings);
  updateComposer();
  refreshServer();
}

function bindEvents() {
  dom.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  dom.prompt.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      send();
    }
  });
  dom.prompt.addEventListener('input', () => {
    autoGrow();
    updateComposer();
  });
  dom.stop.addEventListener('click', stopGeneration);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && state.generation && !document.querySelector('dialog[open]')) stopGeneration();
    if ((event.key || '').toLowerCase() === 'o' && event.shiftKey && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      dom.newChat.click();
    }
  });

  bindAttachmentInputs();

  dom.newChat.addEventListener('click', () => {
    if (state.current.messages.length === 0) {
      closeSidebar();
      dom.prompt.focus();
      return;
    }
    openConversation(newConversation());
  });
  dom.toggleSidebar.addEventListener('click', openSidebar);
  dom.scrim.addEventListener('click', closeSidebar);

  dom.presetSelect.addEventListener('change', () => {
    state.current.system.preset = dom.presetSelect.value;
    rememberSystem(state.current.system);
    renderSystem();
    if (dom.presetSelect.value === 'custom') dom.systemCustom.focus();
    if (isSaved(state.current)) persist(state.current);
  });
  let customTimer = 0;
  dom.systemCustom.addEventListener('input', () => {
    state.current.system.custom = dom.systemCustom.value;
    rememberSystem(state.current.system);
    clearTimeout(customTimer);
    if (isSaved(state.current)) customTimer = setTimeout(() => persist(state.current), 400);
  });
  dom.systemText.addEventListener('click', () => dom.systemText.classList.toggle('expanded'));

  dom.exportOne.addEventListener('click', exportCurrent);
  dom.exportAll.addEventListener('click', exportAll);
  dom.importButton.addEventListener('click', () => dom.importFile.click());
  dom.importFile.addEventListener('change', async () => {
    for (const file of dom.importFile.files) await importFile(file);
    dom.importFile.value = '';
  });

  dom.openSettings.addEventListener('click', openSettings);
  dom.settingsSummary.addEventListener('click', openSettings);
  dom.temperatureRange.addEventListener('input', () => { dom.temperatureValue.textContent = dom.temperatureRange.value; });
  dom.settingsCancel.addEventListener('click', () => dom.settingsDialog.close('cancel'));
  dom.settingsForm.addEventListener('submit', (event) => {
    if (event.submitter && event.submitter.value === 'save') saveSettingsFromDialog();
  });
  dom.lightbox.addEventListener('click', () => dom.lightbox.close());
  window.addEventListener('focus', () => {
    if (state.server.state !== 'ok') refreshServer();
  });
}

async function start() {
  dom.presetSelect.replaceChildren(...PRESETS.map((p) => el('option', { value: p.id, text: p.name })));
  fillDetailOptions();
  bindEvents();
  await loadConversations();
  refreshServer();
}

start();
