// DOM helpers shared by the page's views: the elements of index.html by id, building elements
// (text only, never innerHTML), icons from the page's SVG sprite, toasts, copying to the
// clipboard, downloads, the image lightbox and the confirmation dialog.

const $ = (id) => document.getElementById(id);

// Module scripts run after the document is parsed, so every element exists here.
export const dom = {
  sidebar: $('sidebar'), scrim: $('scrim'), list: $('conversation-list'), listEmpty: $('conversation-empty'),
  newChat: $('new-chat'), exportAll: $('export-all'), importButton: $('import'), importFile: $('import-file'),
  openSettings: $('open-settings'), serverStatus: $('server-status'), toggleSidebar: $('toggle-sidebar'),
  title: $('chat-title'), exportOne: $('export-one'),
  presetSelect: $('system-preset'), systemText: $('system-text'), systemCustom: $('system-custom'),
  messages: $('messages'), emptyState: $('empty-state'), dropZone: $('drop-zone'), messageList: $('message-list'),
  composer: $('composer'), attachments: $('attachments'), attach: $('attach'), fileInput: $('file-input'),
  prompt: $('prompt'), send: $('send'), stop: $('stop'), settingsSummary: $('settings-summary'),
  dropOverlay: $('drop-overlay'),
  settingsDialog: $('settings-dialog'), settingsForm: $('settings-form'), temperatureRange: $('temperature-range'),
  temperatureValue: $('temperature-value'), maxTokens: $('max-tokens'), apiKey: $('api-key'), detail: $('image-detail'),
  serverInfo: $('server-info'), settingsCancel: $('settings-cancel'),
  confirmDialog: $('confirm-dialog'), confirmText: $('confirm-text'),
  lightbox: $('lightbox'), lightboxImage: $('lightbox-image'), toast: $('toast'),
};

export const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * A new element: `props` sets `class`, `text` (textContent), `on…` listeners and other
 * attributes (skipped when null or false, empty when true); `children` are appended.
 */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child != null && child !== false) node.append(child);
  return node;
}

/** An SVG element with these attributes. */
export function svg(tag, attributes) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

/** Icon `name` of the sprite in index.html (`#i-name`). */
export function icon(name) {
  const node = svg('svg', { class: 'icon', 'aria-hidden': 'true' });
  node.append(svg('use', { href: '#i-' + name }));
  return node;
}

export function iconButton(name, label, onclick, extraClass) {
  return el('button', { type: 'button', class: 'button icon-only ghost tiny ' + (extraClass || ''), 'aria-label': label, title: label, onclick },
    icon(name));
}

let toastTimer = 0;
export function toast(message, kind) {
  dom.toast.textContent = message;
  dom.toast.dataset.kind = kind || 'info';
  dom.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { dom.toast.hidden = true; }, kind === 'error' ? 7000 : 3500);
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = el('textarea', { class: 'offscreen', readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

/** A button that copies `getText()` and shows a tick for a moment. */
export function copyButton(getText, label) {
  const button = iconButton('copy', label || 'Copy', async () => {
    try {
      await copyText(getText());
      button.replaceChildren(icon('check'));
      setTimeout(() => button.replaceChildren(icon('copy')), 1200);
    } catch (err) {
      toast('Could not copy: ' + err.message, 'error');
    }
  });
  return button;
}

/** Saves `data` (a string, or an object written as JSON) as a file named `filename`. */
export function download(filename, data, type) {
  const text = typeof data === 'string' ? data : JSON.stringify(data, null, 1);
  const blob = new Blob([text], { type: type || 'application/json' });
  const url = URL.createObjectURL(blob);
  const link = el('a', { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Shows an image full size in the lightbox dialog. */
export function showImage(src, alt) {
  dom.lightboxImage.src = src;
  dom.lightboxImage.alt = alt || '';
  dom.lightbox.showModal();
}

/** Asks `text` in the confirmation dialog; resolves to true when confirmed. */
export function confirmAction(text) {
  dom.confirmText.textContent = text;
  dom.confirmDialog.returnValue = '';
  dom.confirmDialog.showModal();
  return new Promise((resolve) => {
    dom.confirmDialog.addEventListener('close', () => resolve(dom.confirmDialog.returnValue === 'ok'), { once: true });
  });
}
