// glimpse web chat: conversations (IndexedDB), image attachments (downscaled in the
// browser), streaming chat against the server's OpenAI-compatible API, boxes and points of
// grounding answers drawn over their image (from the server's `glimpse.detections`), and a small
// markdown renderer that builds DOM nodes from text only, so model output can never
// inject HTML. Layout is in index.html, looks in style.css. No framework, no network
// access beyond the serving origin.
'use strict';

(() => {
  // ---------------------------------------------------------------- constants

  const PRESETS = [
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
  const DEFAULT_PRESET = 'general';
  const DEFAULT_SETTINGS = { temperature: 0.7, maxTokens: 1024, apiKey: '', detail: 'auto' };
  // Image detail sent as OpenAI's image_url.detail: the server maps it to a pixel budget.
  const DETAIL_LEVELS = [
    ['auto', 'Auto — the server\'s default'],
    ['low', 'Low — at most 256 tokens per image, fastest'],
    ['high', 'High — full resolution: small text, precise boxes'],
  ];
  // Presets whose answers get a "Download .md" button.
  const MARKDOWN_PRESETS = new Set(['markdown', 'ocr']);
  // Box colours, in the order src/grounding/draw.rs uses them for `glimpse run --draw`.
  const PALETTE = ['#e6194b', '#3cb44b', '#0082c8', '#f58230', '#911eb4', '#46f0f0', '#f032e6', '#ffe119'];
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const DEFAULT_MAX_LONG_SIDE = 2048; // used when the server does not announce its image budget
  const SERVER_POLL_MS = 2000; // while the server is loading or unreachable
  const SERVER_IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp', 'image/gif', 'image/bmp']);
  const EXPORT_FORMAT = 'glimpse.conversations';
  const STORAGE_KEYS = { settings: 'glimpse.settings', current: 'glimpse.current', system: 'glimpse.system' };

  const $ = (id) => document.getElementById(id);
  const dom = {
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

  // ---------------------------------------------------------------- small helpers

  function el(tag, props, ...children) {
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

  function icon(name) {
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('class', 'icon');
    svg.setAttribute('aria-hidden', 'true');
    const use = document.createElementNS('http://www.w3.org/2000/svg', 'use');
    use.setAttribute('href', '#i-' + name);
    svg.append(use);
    return svg;
  }

  function iconButton(name, label, onclick, extraClass) {
    return el('button', { type: 'button', class: 'button icon-only ghost tiny ' + (extraClass || ''), 'aria-label': label, title: label, onclick },
      icon(name));
  }

  // crypto.randomUUID only exists in secure contexts; the page is often opened over plain http on a LAN.
  function newId() {
    return Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 10);
  }

  let toastTimer = 0;
  function toast(message, kind) {
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

  function copyButton(getText, label) {
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

  function download(filename, data, type) {
    const text = typeof data === 'string' ? data : JSON.stringify(data, null, 1);
    const blob = new Blob([text], { type: type || 'application/json' });
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function slug(text) {
    return (text || 'conversation').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'conversation';
  }

  function formatNumber(value, digits) {
    return value.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  }

  function formatMs(ms) {
    if (ms < 1) return '<1 ms';
    return ms >= 1000 ? formatNumber(ms / 1000, 2) + ' s' : formatNumber(ms, 0) + ' ms';
  }

  function formatRate(tokensPerSecond) {
    return formatNumber(tokensPerSecond, tokensPerSecond >= 100 ? 0 : 1);
  }

  // ---------------------------------------------------------------- markdown (DOM only, never innerHTML)

  const markdown = (() => {
    const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
    const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
    const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
    const QUOTE = /^ {0,3}>\s?(.*)$/;
    const LIST_ITEM = /^( *)([-*+]|\d{1,9}[.)])( +|$)(.*)$/;
    const TABLE_SEPARATOR = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
    const INLINE = new RegExp([
      /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/.source, // 1, 2: code span
      /\*\*(?=\S)([\s\S]*?\S)\*\*/.source, // 3: strong
      /(?<![\w])__(?=\S)([\s\S]*?\S)__(?![\w])/.source, // 4: strong
      /~~(?=\S)([\s\S]*?\S)~~/.source, // 5: strikethrough
      /(?<![\w*])\*(?=[^\s*])([\s\S]*?[^\s*])\*(?![\w*])/.source, // 6: emphasis (never inside words: 2*3*4)
      /(?<![\w])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\w])/.source, // 7: emphasis
      /\[([^\]\n]+)\]\(\s*(https?:\/\/[^\s()]+|mailto:[^\s()]+)\s*\)/.source, // 8, 9: link
      /\bhttps?:\/\/[^\s<>"'()[\]]*[^\s<>"'()[\].,;:!?]/.source, // 0: bare URL
      /\\([\\`*_{}[\]()#+\-.!|~<>])/.source, // 10: escaped character
      /\n/.source, // line break (chat output keeps its line breaks, OCR needs them)
    ].join('|'), 'g');

    function isTableStart(lines, i) {
      return i + 1 < lines.length && lines[i].includes('|') && lines[i + 1].includes('|')
        && lines[i + 1].includes('-') && TABLE_SEPARATOR.test(lines[i + 1]);
    }

    function startsBlock(lines, i) {
      const line = lines[i];
      return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line)
        || LIST_ITEM.test(line) || isTableStart(lines, i);
    }

    function indentOf(line) {
      return line.length - line.trimStart().length;
    }

    function inline(text, parent) {
      let last = 0;
      const matches = [...text.matchAll(INLINE)];
      for (const m of matches) {
        if (m.index > last) parent.append(text.slice(last, m.index));
        last = m.index + m[0].length;
        if (m[2] !== undefined) {
          const code = m[2].length > 2 && m[2].startsWith(' ') && m[2].endsWith(' ') ? m[2].slice(1, -1) : m[2];
          parent.append(el('code', { text: code }));
        } else if (m[3] !== undefined || m[4] !== undefined) {
          parent.append(inline(m[3] ?? m[4], el('strong')));
        } else if (m[5] !== undefined) {
          parent.append(inline(m[5], el('del')));
        } else if (m[6] !== undefined || m[7] !== undefined) {
          parent.append(inline(m[6] ?? m[7], el('em')));
        } else if (m[8] !== undefined) {
          parent.append(inline(m[8], link(m[9])));
        } else if (m[10] !== undefined) {
          parent.append(m[10]);
        } else if (m[0] === '\n') {
          parent.append(el('br'));
        } else {
          parent.append(link(m[0], m[0]));
        }
      }
      if (last < text.length) parent.append(text.slice(last));
      return parent;
    }

    function link(href, text) {
      return el('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow', text });
    }

    function codeBlock(code, language) {
      return el('div', { class: 'code-block' },
        el('div', { class: 'code-head' },
          el('span', { text: language || 'text' }),
          copyButton(() => code, 'Copy code')),
        el('pre', null, el('code', { text: code })));
    }

    function splitRow(line) {
      let row = line.trim();
      if (row.startsWith('|')) row = row.slice(1);
      if (row.endsWith('|') && !row.endsWith('\\|')) row = row.slice(0, -1);
      const cells = [];
      let cell = '';
      for (let i = 0; i < row.length; i++) {
        if (row[i] === '\\' && row[i + 1] === '|') { cell += '|'; i++; } else if (row[i] === '|') { cells.push(cell.trim()); cell = ''; } else cell += row[i];
      }
      cells.push(cell.trim());
      return cells;
    }

    function table(lines, i, parent) {
      const aligns = splitRow(lines[i + 1]).map((spec) => {
        if (spec.startsWith(':') && spec.endsWith(':')) return 'center';
        if (spec.endsWith(':')) return 'right';
        return spec.startsWith(':') ? 'left' : '';
      });
      const row = (cells, tag) => el('tr', null, ...aligns.map((align, c) => {
        const cell = inline(cells[c] || '', el(tag));
        if (align) cell.style.textAlign = align;
        return cell;
      }));
      const body = el('tbody');
      let j = i + 2;
      while (j < lines.length && lines[j].trim() && lines[j].includes('|')) body.append(row(splitRow(lines[j++]), 'td'));
      parent.append(el('div', { class: 'table-wrap' }, el('table', null, el('thead', null, row(splitRow(lines[i]), 'th')), body)));
      return j;
    }

    function fence(lines, i, parent) {
      const [, marker, language] = FENCE.exec(lines[i]);
      const closing = new RegExp('^ {0,3}' + (marker[0] === '`' ? '`' : '~') + '{' + marker.length + ',}\\s*$');
      const body = [];
      let j = i + 1;
      while (j < lines.length && !closing.test(lines[j])) body.push(lines[j++]);
      parent.append(codeBlock(body.join('\n'), language));
      return j + 1;
    }

    function quote(lines, i, parent) {
      const inner = [];
      let j = i;
      while (j < lines.length && lines[j].trim()) {
        const m = QUOTE.exec(lines[j]);
        if (m) inner.push(m[1]);
        else if (startsBlock(lines, j)) break;
        else inner.push(lines[j]);
        j++;
      }
      parent.append(blocks(inner, el('blockquote')));
      return j;
    }

    function list(lines, i, parent) {
      const first = LIST_ITEM.exec(lines[i]);
      const indent = first[1].length;
      const ordered = /\d/.test(first[2]);
      const sameList = (m) => m && m[1].length <= indent + 1 && /\d/.test(m[2]) === ordered;
      const items = [];
      let loose = false;
      let j = i;
      while (j < lines.length) {
        const line = lines[j];
        const m = LIST_ITEM.exec(line);
        if (sameList(m) && !RULE.test(line)) {
          items.push({ lines: [m[4]], contentIndent: m[1].length + m[2].length + Math.min(Math.max(m[3].length, 1), 4) });
          j++;
          continue;
        }
        const item = items[items.length - 1];
        if (!line.trim()) {
          let next = j + 1;
          while (next < lines.length && !lines[next].trim()) next++;
          if (next >= lines.length) break;
          if (indentOf(lines[next]) > indent) item.lines.push('');
          else if (!sameList(LIST_ITEM.exec(lines[next]))) break;
          loose = true;
          j++;
          continue;
        }
        if (indentOf(line) > indent) {
          item.lines.push(line.slice(Math.min(indentOf(line), item.contentIndent)));
        } else if (!startsBlock(lines, j) && item.lines[item.lines.length - 1].trim()) {
          item.lines.push(line.trim()); // lazy continuation of the item's paragraph
        } else {
          break;
        }
        j++;
      }
      const node = el(ordered ? 'ol' : 'ul', { class: loose ? 'loose' : null });
      const start = parseInt(first[2], 10);
      if (ordered && start !== 1) node.setAttribute('start', String(start));
      for (const item of items) node.append(blocks(item.lines, el('li')));
      parent.append(node);
      return j;
    }

    function paragraph(lines, i, parent) {
      const text = [lines[i]];
      let j = i + 1;
      while (j < lines.length && lines[j].trim() && !startsBlock(lines, j)) text.push(lines[j++]);
      parent.append(inline(text.map((line) => line.trim()).join('\n'), el('p')));
      return j;
    }

    function blocks(lines, parent) {
      let i = 0;
      while (i < lines.length) {
        const line = lines[i];
        let m;
        if (!line.trim()) i++;
        else if (FENCE.test(line)) i = fence(lines, i, parent);
        else if ((m = HEADING.exec(line))) {
          parent.append(inline(m[2], el('h' + Math.min(m[1].length + 1, 6))));
          i++;
        } else if (RULE.test(line)) {
          parent.append(el('hr'));
          i++;
        } else if (QUOTE.test(line)) i = quote(lines, i, parent);
        else if (LIST_ITEM.test(line)) i = list(lines, i, parent);
        else if (isTableStart(lines, i)) i = table(lines, i, parent);
        else i = paragraph(lines, i, parent);
      }
      return parent;
    }

    return function render(text) {
      const lines = text.replace(/\r\n?/g, '\n').replace(/\t/g, '    ').split('\n');
      return blocks(lines, document.createDocumentFragment());
    };
  })();

  // ---------------------------------------------------------------- storage

  const store = (() => {
    let opening = null;
    function open() {
      opening = opening || new Promise((resolve, reject) => {
        const request = indexedDB.open('glimpse', 1);
        request.onupgradeneeded = () => request.result.createObjectStore('conversations', { keyPath: 'id' });
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error || new Error('IndexedDB is not available'));
      });
      return opening;
    }
    async function run(mode, action) {
      const database = await open();
      return new Promise((resolve, reject) => {
        const transaction = database.transaction('conversations', mode);
        const request = action(transaction.objectStore('conversations'));
        transaction.oncomplete = () => resolve(request.result);
        transaction.onerror = () => reject(transaction.error);
        transaction.onabort = () => reject(transaction.error || new Error('storage transaction aborted'));
      });
    }
    return {
      all: () => run('readonly', (s) => s.getAll()),
      put: (conversation) => run('readwrite', (s) => s.put(conversation)),
      remove: (id) => run('readwrite', (s) => s.delete(id)),
    };
  })();

  function loadSettings() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE_KEYS.settings) || '{}');
      return { ...DEFAULT_SETTINGS, ...saved };
    } catch {
      return { ...DEFAULT_SETTINGS };
    }
  }

  function saveSettings() {
    localStorage.setItem(STORAGE_KEYS.settings, JSON.stringify(state.settings));
  }

  // ---------------------------------------------------------------- state

  const state = {
    conversations: [], // saved ones, newest first
    current: null, // the open conversation; a draft (not saved, not listed) until its first message
    pending: [], // attachments in the composer: { id, name, image?, error? }
    generation: null, // { conversation, message, controller }
    settings: loadSettings(),
    // budgetPixels: the server resizes images to at most this many pixels, so larger uploads are wasted;
    // maxPixels: the server refuses larger images. Both optional (null when not announced).
    server: { state: 'unknown', model: null, budgetPixels: null, maxPixels: null, detail: '' },
  };

  // New conversations start with the system prompt chosen last.
  function lastSystem() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE_KEYS.system) || '{}');
      const preset = PRESETS.some((p) => p.id === saved.preset) ? saved.preset : DEFAULT_PRESET;
      return { preset, custom: typeof saved.custom === 'string' ? saved.custom : '' };
    } catch {
      return { preset: DEFAULT_PRESET, custom: '' };
    }
  }

  function newConversation() {
    const now = Date.now();
    return { id: newId(), title: '', createdAt: now, updatedAt: now, system: lastSystem(), messages: [] };
  }

  function isSaved(conversation) {
    return state.conversations.includes(conversation);
  }

  function systemPrompt(conversation) {
    const { preset, custom } = conversation.system;
    if (preset === 'custom') return custom.trim();
    const found = PRESETS.find((p) => p.id === preset);
    return found ? found.text : '';
  }

  function titleFor(conversation) {
    if (conversation.title) return conversation.title;
    const first = conversation.messages.find((m) => m.role === 'user');
    if (!first) return 'New chat';
    const text = first.text.trim().split('\n')[0];
    if (text) return text.length > 48 ? text.slice(0, 47) + '…' : text;
    const count = first.images.length;
    return count === 1 ? 'Image' : count + ' images';
  }

  async function persist(conversation) {
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

  // ---------------------------------------------------------------- images

  function readAsDataUrl(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
  }

  function downscaleFactor(width, height) {
    const { budgetPixels, maxPixels } = state.server;
    let scale = budgetPixels ? Math.sqrt(budgetPixels / (width * height)) : DEFAULT_MAX_LONG_SIDE / Math.max(width, height);
    if (maxPixels) scale = Math.min(scale, Math.sqrt(maxPixels / (width * height)));
    return Math.min(1, scale);
  }

  // Returns { name, dataUrl, width, height }. The original bytes are sent when the image is small
  // enough and in a format the server decodes (the server then preprocesses exactly what the user
  // picked); otherwise the image is resized/re-encoded on a canvas.
  async function prepareImage(file) {
    const name = file.name || 'pasted image';
    let bitmap;
    try {
      bitmap = await createImageBitmap(file);
    } catch {
      throw new Error(`"${name}" is not an image this browser can read`);
    }
    const { width, height } = bitmap;
    const scale = downscaleFactor(width, height);
    if (scale === 1 && SERVER_IMAGE_TYPES.has(file.type)) {
      bitmap.close();
      return { name, dataUrl: await readAsDataUrl(file), width, height };
    }
    const w = Math.max(1, Math.floor(width * scale));
    const h = Math.max(1, Math.floor(height * scale));
    const resized = await createImageBitmap(bitmap, { resizeWidth: w, resizeHeight: h, resizeQuality: 'high' }).catch(() => bitmap);
    const canvas = el('canvas', { width: w, height: h });
    const context = canvas.getContext('2d');
    context.imageSmoothingEnabled = true;
    context.imageSmoothingQuality = 'high';
    context.drawImage(resized, 0, 0, w, h);
    bitmap.close();
    resized.close();
    const type = file.type === 'image/jpeg' ? 'image/jpeg' : 'image/png';
    return { name, dataUrl: canvas.toDataURL(type, 0.92), width: w, height: h, originalWidth: width, originalHeight: height };
  }

  function addFiles(files) {
    const images = [...files].filter((f) => f.type.startsWith('image/') || !f.type);
    if (images.length < files.length) toast('Only images can be attached.', 'error');
    for (const file of images) {
      const entry = { id: newId(), name: file.name || 'pasted image', image: null };
      state.pending.push(entry);
      prepareImage(file).then((image) => {
        entry.image = image;
      }, (err) => {
        state.pending = state.pending.filter((e) => e !== entry);
        toast(err.message, 'error');
      }).finally(() => {
        renderAttachments();
        updateComposer();
      });
    }
    renderAttachments();
    updateComposer();
  }

  function showImage(src, alt) {
    dom.lightboxImage.src = src;
    dom.lightboxImage.alt = alt || '';
    dom.lightbox.showModal();
  }

  // ---------------------------------------------------------------- server API

  function authHeaders() {
    return state.settings.apiKey ? { Authorization: 'Bearer ' + state.settings.apiKey } : {};
  }

  function apiError(status, body, fallback) {
    const info = body && typeof body === 'object' && body.error && typeof body.error === 'object' ? body.error : {};
    const error = new Error(String(info.message || fallback || 'request failed'));
    error.status = status;
    error.type = info.type ? String(info.type) : '';
    return error;
  }

  async function errorFromResponse(response) {
    const text = await response.text().catch(() => '');
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
    const fallback = text.trim() ? text.trim().slice(0, 500) : `${response.status} ${response.statusText}`.trim();
    return apiError(response.status, body, fallback);
  }

  // Yields parsed `chat.completion.chunk` objects (or one `chat.completion` if the server did not stream).
  async function* chatStream(body, signal) {
    const response = await fetch('v1/chat/completions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', ...authHeaders() },
      body: JSON.stringify(body),
      signal,
    });
    if (!response.ok) throw await errorFromResponse(response);
    if (!(response.headers.get('content-type') || '').includes('text/event-stream')) {
      yield await response.json();
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split('\n');
      buffer = lines.pop();
      for (const raw of lines) {
        const line = raw.replace(/\r$/, '');
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') {
          reader.cancel().catch(() => {});
          return;
        }
        let chunk;
        try {
          chunk = JSON.parse(data);
        } catch {
          throw new Error('the server sent a malformed stream event: ' + data.slice(0, 200));
        }
        if (chunk && chunk.error) throw apiError(response.status, chunk, 'the server reported an error');
        yield chunk;
      }
    }
  }

  // The first positive number under `key` in the sources or their `limits` objects.
  function announced(key, ...sources) {
    for (const source of sources) {
      for (const holder of [source, source && source.limits]) {
        const value = holder && typeof holder === 'object' ? holder[key] : undefined;
        if (Number.isFinite(value) && value > 0) return value;
      }
    }
    return null;
  }

  let serverPoll = 0;
  async function refreshServer() {
    const server = state.server;
    clearTimeout(serverPoll);
    try {
      const [modelsResponse, healthResponse] = await Promise.all([
        fetch('v1/models', { headers: authHeaders() }),
        fetch('health', { headers: authHeaders() }).catch(() => null),
      ]);
      const health = healthResponse ? await healthResponse.json().catch(() => null) : null;
      if (modelsResponse.status === 401) {
        Object.assign(server, { state: 'auth', detail: 'API key needed', model: null });
      } else if (!modelsResponse.ok) {
        const err = await errorFromResponse(modelsResponse);
        Object.assign(server, { state: modelsResponse.status === 503 ? 'loading' : 'error', detail: err.message, model: null });
      } else {
        const models = await modelsResponse.json();
        const model = models && Array.isArray(models.data) ? models.data[0] : null;
        const ready = !healthResponse || healthResponse.ok;
        Object.assign(server, {
          state: ready ? 'ok' : 'loading',
          model: model && model.id ? String(model.id) : null,
          budgetPixels: announced('image_budget_pixels', model, health, models),
          maxPixels: announced('max_image_pixels', model, health, models),
          detail: ready ? '' : 'model loading',
        });
      }
    } catch {
      Object.assign(server, { state: 'offline', detail: 'server unreachable', model: null });
    }
    if (server.state !== 'ok' && server.state !== 'auth') serverPoll = setTimeout(refreshServer, SERVER_POLL_MS);
    renderServerStatus();
  }

  // ---------------------------------------------------------------- generation

  function requestMessages(conversation) {
    const out = [];
    const system = systemPrompt(conversation);
    if (system) out.push({ role: 'system', content: system });
    for (const message of conversation.messages) {
      if (message.role === 'user') {
        if (message.images.length === 0) {
          out.push({ role: 'user', content: message.text });
        } else {
          const detail = state.settings.detail !== 'auto' ? { detail: state.settings.detail } : {};
          const parts = message.images.map((image) => ({ type: 'image_url', image_url: { url: image.dataUrl, ...detail } }));
          if (message.text) parts.push({ type: 'text', text: message.text });
          out.push({ role: 'user', content: parts });
        }
      } else if (message.role === 'assistant' && message.text) {
        out.push({ role: 'assistant', content: message.text });
      }
    }
    return out;
  }

  function applyChunk(message, chunk) {
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
      const found = chunk.glimpse.detections.map(cleanDetection).filter(Boolean);
      if (found.length) message.detections = [...(message.detections || []), ...found];
    }
    if (chunk.timings && typeof chunk.timings === 'object') {
      const t = chunk.timings;
      message.timings = {
        vision_ms: Number(t.vision_ms) || 0, prefill_ms: Number(t.prefill_ms) || 0,
        decode_ms: Number(t.decode_ms) || 0, cached_prompt_tokens: Number(t.cached_prompt_tokens) || 0,
      };
    }
  }

  // One entry of the server's glimpse.detections, or null when malformed.
  function cleanDetection(raw) {
    if (!raw || typeof raw !== 'object') return null;
    const numbers = (list, n) => Array.isArray(list) && list.length === n && list.every((v) => Number.isFinite(v) && v >= 0);
    const image = Number(raw.image);
    if (!Number.isInteger(image) || image < 0) return null;
    const out = { image, label: typeof raw.label === 'string' ? raw.label : '' };
    if (numbers(raw.bbox, 4)) out.bbox = raw.bbox.slice();
    else if (numbers(raw.point, 2)) out.point = raw.point.slice();
    else return null;
    if (numbers(raw.span, 2)) out.span = raw.span.slice();
    return out;
  }

  function describeError(err) {
    if (err.status === 401) return `${err.message} — set the API key in Settings.`;
    if (err.status) return `${err.message} (HTTP ${err.status}${err.type ? ', ' + err.type : ''})`;
    if (err instanceof TypeError) return 'Could not reach the server: ' + err.message;
    return err.message || String(err);
  }

  async function generate(conversation) {
    const body = {
      model: state.server.model || 'glimpse',
      messages: requestMessages(conversation),
      stream: true,
      stream_options: { include_usage: true },
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
      for await (const chunk of chatStream(body, controller.signal)) {
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

  function stopGeneration() {
    if (state.generation) state.generation.controller.abort();
  }

  async function send() {
    if (state.generation || state.pending.some((entry) => !entry.image)) return;
    const text = dom.prompt.value.trim();
    const images = state.pending.map((entry) => entry.image);
    if (!text && images.length === 0) return;
    const conversation = state.current;
    conversation.messages.push({ role: 'user', text, images, createdAt: Date.now() });
    dom.prompt.value = '';
    autoGrow();
    state.pending = [];
    renderAttachments();
    await persist(conversation);
    renderHeader();
    await generate(conversation);
  }

  async function retryLast() {
    const conversation = state.current;
    if (state.generation) return;
    const last = conversation.messages[conversation.messages.length - 1];
    if (last && (last.role === 'assistant' || last.role === 'error')) conversation.messages.pop();
    await generate(conversation);
  }

  // ---------------------------------------------------------------- rendering: sidebar

  function renderSidebar() {
    dom.list.replaceChildren(...state.conversations.map(conversationItem));
    dom.listEmpty.hidden = state.conversations.length > 0;
    dom.exportAll.disabled = state.conversations.length === 0;
  }

  function conversationItem(conversation) {
    const title = el('span', { class: 'conversation-title', text: titleFor(conversation) });
    const open = el('button', { type: 'button', class: 'conversation-open', onclick: () => openConversation(conversation) },
      title, el('span', { class: 'conversation-meta', text: relativeTime(conversation.updatedAt) }));
    const item = el('li', {
      class: 'conversation-item' + (conversation === state.current ? ' active' : ''),
      'data-conversation-id': conversation.id,
    }, open,
    el('span', { class: 'conversation-actions' },
      iconButton('pencil', 'Rename', () => startRename(item, conversation), 'rename'),
      iconButton('trash', 'Delete', () => deleteConversation(conversation), 'delete')));
    return item;
  }

  function relativeTime(time) {
    const minutes = Math.round((Date.now() - time) / 60000);
    if (minutes < 1) return 'just now';
    if (minutes < 60) return minutes + ' min ago';
    const date = new Date(time);
    const today = new Date();
    if (date.toDateString() === today.toDateString()) return date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
    return date.toLocaleDateString(undefined, { month: 'short', day: 'numeric', year: date.getFullYear() === today.getFullYear() ? undefined : 'numeric' });
  }

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
        await persist(conversation);
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

  function confirmAction(text) {
    dom.confirmText.textContent = text;
    dom.confirmDialog.returnValue = '';
    dom.confirmDialog.showModal();
    return new Promise((resolve) => {
      dom.confirmDialog.addEventListener('close', () => resolve(dom.confirmDialog.returnValue === 'ok'), { once: true });
    });
  }

  async function deleteConversation(conversation) {
    if (!(await confirmAction(`Delete “${titleFor(conversation)}”? This cannot be undone.`))) return;
    if (state.generation && state.generation.conversation === conversation) stopGeneration();
    state.conversations = state.conversations.filter((c) => c !== conversation);
    try {
      await store.remove(conversation.id);
    } catch (err) {
      toast('Could not delete from browser storage: ' + (err && err.message), 'error');
    }
    if (state.current === conversation) openConversation(state.conversations[0] || newConversation());
    else renderSidebar();
  }

  // ---------------------------------------------------------------- rendering: conversation

  function openConversation(conversation) {
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

  function renderHeader() {
    const title = titleFor(state.current);
    dom.title.textContent = title;
    document.title = state.current.messages.length ? `${title} · glimpse` : 'glimpse';
    dom.exportOne.disabled = !isSaved(state.current);
  }

  function renderSystem() {
    const { preset, custom } = state.current.system;
    dom.presetSelect.value = preset;
    const isCustom = preset === 'custom';
    dom.systemCustom.hidden = !isCustom;
    if (isCustom && dom.systemCustom.value !== custom) dom.systemCustom.value = custom;
    const text = systemPrompt(state.current);
    dom.systemText.hidden = isCustom;
    dom.systemText.textContent = text || 'The model answers without a system prompt.';
    dom.systemText.classList.toggle('muted', !text);
  }

  function renderMessages() {
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
            ? el('button', { type: 'button', class: 'button small ghost retry', onclick: retryLast }, icon('retry'), 'Retry')
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
    return el('div', { class: 'message user', 'data-role': 'user' },
      el('div', { class: 'bubble' }, images, message.text ? el('div', { class: 'user-text', text: message.text }) : null));
  }

  function splitThinking(text) {
    const match = /^\s*<think>([\s\S]*?)(<\/think>|$)/.exec(text);
    if (!match) return { thinking: '', answer: text };
    return { thinking: match[1].trim(), answer: text.slice(match[0].length).trimStart(), open: !match[2] };
  }

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
    const rendered = markdown(answer);
    content.push(rendered);
    if (message.detections && message.detections.length) {
      const view = groundingView(message, imagesBefore(message));
      if (view) {
        content.push(view);
        markDetectionText(rendered, message);
      }
    }
    body.replaceChildren(...content);
    body.classList.toggle('streaming', Boolean(streaming));
    if (streaming && !message.text && !message.reasoning) {
      const hasImages = state.current.messages.some((m) => m.role === 'user' && m.images.length);
      body.replaceChildren(el('div', { class: 'typing' }, el('span'), el('span'), el('span'),
        el('em', { text: hasImages ? 'Looking at the images…' : 'Thinking…' })));
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
      isLast && !state.generation ? iconButton('retry', 'Regenerate', retryLast, 'regenerate') : null));
    if (message.error) meta.after(el('div', { class: 'error-box inline' }, el('strong', { text: 'Error' }), el('span', { class: 'error-text', text: message.error })));
  }

  // The images of the user messages before `message`, in order: the request's images, which
  // the detections' `image` index counts.
  function imagesBefore(message) {
    const images = [];
    for (const m of state.current.messages) {
      if (m === message) break;
      if (m.role === 'user') images.push(...m.images);
    }
    return images;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    return node;
  }

  // One colour per distinct label, in order of first appearance (as `glimpse run --draw`).
  function labelColours(detections) {
    const labels = [];
    return detections.map((d) => {
      let index = labels.indexOf(d.label);
      if (index < 0) index = labels.push(d.label) - 1;
      return PALETTE[index % PALETTE.length];
    });
  }

  // Highlights detection `index` of an answer: its box and its JSON in the text.
  function highlightDetection(container, index, on) {
    for (const node of container.querySelectorAll(`[data-detection="${index}"]`)) node.classList.toggle('active', on);
  }

  // Hovering `node` highlights everything of detection `index` in its message.
  function hoverable(node, index) {
    const container = () => node.closest('.message') || document.body;
    node.addEventListener('mouseenter', () => highlightDetection(container(), index, true));
    node.addEventListener('mouseleave', () => highlightDetection(container(), index, false));
  }

  // The answer's boxes and points over the images they refer to (pixel coordinates of the image
  // as sent; the SVG's viewBox is that size, so it scales with the picture), a legend and a toggle.
  function groundingView(message, images) {
    const colours = labelColours(message.detections);
    const view = el('div', { class: 'grounding-view' });
    const figures = new Map();
    message.detections.forEach((d, index) => {
      const image = images[d.image];
      if (!image || !image.width || !image.height) return;
      if (!figures.has(d.image)) {
        const layer = svg('svg', { class: 'detections-layer', viewBox: `0 0 ${image.width} ${image.height}`, preserveAspectRatio: 'none' });
        const legend = el('figcaption', { class: 'detections-legend' });
        figures.set(d.image, { layer, legend, figure: el('figure', { class: 'grounding', 'data-image': d.image },
          el('div', { class: 'grounding-frame' }, el('img', { src: image.dataUrl, alt: image.name, onclick: () => showImage(image.dataUrl, image.name) }), layer), legend) });
      }
      const { layer, legend } = figures.get(d.image);
      const colour = colours[index];
      const stroke = Math.max(2, Math.min(image.width, image.height) / 200);
      const group = svg('g', { class: 'detection', 'data-detection': index, stroke: colour, fill: colour });
      if (d.bbox) {
        const [x1, y1, x2, y2] = d.bbox;
        group.append(svg('rect', { x: x1, y: y1, width: Math.max(1, x2 - x1), height: Math.max(1, y2 - y1), fill: 'none', 'stroke-width': stroke, 'vector-effect': 'non-scaling-stroke' }));
      } else {
        const [x, y] = d.point;
        group.append(svg('circle', { cx: x, cy: y, r: stroke * 2.5, 'stroke-width': 0 }));
      }
      const title = svg('title', {});
      title.textContent = d.label || 'object';
      group.append(title);
      hoverable(group, index);
      group.addEventListener('click', () => showImage(image.dataUrl, image.name));
      layer.append(group);
      const chip = el('span', { class: 'detection-chip', 'data-detection': index, text: d.label || 'object' });
      chip.style.setProperty('--detection-colour', colour);
      hoverable(chip, index);
      legend.append(chip);
    });
    if (!figures.size) return null;
    const toggle = el('input', { type: 'checkbox', checked: true, onchange: () => view.classList.toggle('hide-detections', !toggle.checked) });
    const count = message.detections.length;
    view.append(el('label', { class: 'detections-toggle' }, toggle, ` Show ${count} ${count === 1 ? 'detection' : 'detections'}`),
      ...[...figures.values()].map((f) => f.figure));
    return view;
  }

  // Wraps each detection's JSON in the rendered answer in a <mark> that highlights with its box.
  function markDetectionText(root, message) {
    const chars = Array.from(message.text);
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    let node = walker.nextNode();
    let from = 0;
    message.detections.forEach((d, index) => {
      if (!d.span) return;
      const snippet = chars.slice(d.span[0], d.span[1]).join('');
      while (node && node.data.indexOf(snippet, from) < 0) {
        node = walker.nextNode();
        from = 0;
      }
      if (!node || !snippet) return;
      const at = node.data.indexOf(snippet, from);
      const rest = node.splitText(at);
      const after = rest.splitText(snippet.length);
      const mark = el('mark', { class: 'detection-ref', 'data-detection': index });
      rest.replaceWith(mark);
      mark.append(rest);
      node = after;
      from = 0;
      walker.currentNode = after;
    });
    for (const mark of root.querySelectorAll('mark.detection-ref')) hoverable(mark, Number(mark.dataset.detection));
  }

  // A whole-document Markdown answer without the ```markdown fence the model may wrap it in
  // (as src/chat/presets.rs strip_markdown_fence).
  function stripMarkdownFence(text) {
    const trimmed = text.trim();
    const match = /^```(markdown|md)?[ \t]*\n([\s\S]*?)\n?```$/.exec(trimmed);
    return match && !match[2].includes('\n```\n') ? match[2] : trimmed;
  }

  function timingsText(message) {
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

  function timingsTitle(message) {
    const t = message.timings;
    const u = message.usage;
    const lines = [];
    if (u) lines.push(`prompt ${u.prompt_tokens} tokens, answer ${u.completion_tokens} tokens`);
    if (t) lines.push(`vision ${t.vision_ms} ms, prefill ${t.prefill_ms} ms, decode ${t.decode_ms} ms, cached prompt ${t.cached_prompt_tokens} tokens`);
    return lines.join('\n');
  }

  let renderQueued = false;
  function scheduleStreamRender() {
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

  // ---------------------------------------------------------------- rendering: composer and status

  function renderAttachments() {
    dom.attachments.hidden = state.pending.length === 0;
    dom.attachments.replaceChildren(...state.pending.map((entry) => {
      const remove = el('button', {
        type: 'button', class: 'remove', 'aria-label': `Remove ${entry.name}`, title: 'Remove',
        onclick: () => {
          state.pending = state.pending.filter((e) => e !== entry);
          renderAttachments();
          updateComposer();
        },
      }, icon('x'));
      if (!entry.image) return el('div', { class: 'thumb loading', title: entry.name }, el('span', { class: 'spinner' }), remove);
      const { image } = entry;
      const resized = image.originalWidth ? ` (resized from ${image.originalWidth}×${image.originalHeight})` : '';
      return el('div', { class: 'thumb', title: `${image.name} · ${image.width}×${image.height}${resized}` },
        el('img', { src: image.dataUrl, alt: image.name, onclick: () => showImage(image.dataUrl, image.name) }), remove);
    }));
  }

  function updateComposer() {
    const busy = Boolean(state.generation);
    const loading = state.pending.some((entry) => !entry.image);
    dom.send.hidden = busy;
    dom.stop.hidden = !busy;
    dom.send.disabled = loading || (!dom.prompt.value.trim() && state.pending.length === 0);
    dom.composer.classList.toggle('busy', busy);
    const { temperature, maxTokens } = state.settings;
    const detail = state.settings.detail && state.settings.detail !== 'auto' ? ` · ${state.settings.detail} detail` : '';
    dom.settingsSummary.textContent = `temperature ${temperature} · max ${maxTokens} tokens${detail}${state.settings.apiKey ? ' · API key set' : ''}`;
  }

  function renderServerStatus() {
    const { state: status, model, detail } = state.server;
    dom.serverStatus.dataset.state = status;
    dom.serverStatus.textContent = status === 'ok' ? (model || 'ready') : detail;
    dom.serverStatus.title = status === 'ok' ? `Connected · model ${model || 'unknown'}` : detail;
  }

  function autoGrow() {
    dom.prompt.style.height = 'auto';
    dom.prompt.style.height = Math.min(dom.prompt.scrollHeight, window.innerHeight * 0.4) + 'px';
  }

  function openSidebar() {
    dom.sidebar.classList.add('open');
    dom.scrim.hidden = false;
  }

  function closeSidebar() {
    dom.sidebar.classList.remove('open');
    dom.scrim.hidden = true;
  }

  // ---------------------------------------------------------------- settings dialog

  function openSettings() {
    const { temperature, maxTokens, apiKey } = state.settings;
    dom.temperatureRange.value = temperature;
    dom.temperatureValue.textContent = temperature;
    dom.maxTokens.value = maxTokens;
    dom.apiKey.value = apiKey;
    dom.detail.value = DETAIL_LEVELS.some(([level]) => level === state.settings.detail) ? state.settings.detail : 'auto';
    const { model, budgetPixels, maxPixels, state: status, detail } = state.server;
    const megapixels = (pixels) => `${formatNumber(pixels / 1e6, 1)} MP`;
    const rows = [
      ['Server', status === 'ok' ? 'connected' : detail || status],
      ['Model', model || '—'],
      ['Images sent at', budgetPixels ? `≤ ${megapixels(budgetPixels)} (server budget)` : `≤ ${DEFAULT_MAX_LONG_SIDE} px on the longer side`],
    ];
    if (maxPixels) rows.push(['Server refuses', `images over ${megapixels(maxPixels)}`]);
    dom.serverInfo.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
    dom.settingsDialog.showModal();
  }

  function saveSettingsFromDialog() {
    const maxTokens = Math.round(Number(dom.maxTokens.value));
    state.settings = {
      temperature: Number(dom.temperatureRange.value),
      maxTokens: maxTokens > 0 ? maxTokens : DEFAULT_SETTINGS.maxTokens,
      apiKey: dom.apiKey.value.trim(),
      detail: dom.detail.value,
    };
    saveSettings();
    updateComposer();
    refreshServer();
  }

  // ---------------------------------------------------------------- export / import

  function exportData(conversations) {
    return { format: EXPORT_FORMAT, version: 1, exported_at: new Date().toISOString(), conversations };
  }

  function cleanImage(raw) {
    if (!raw || typeof raw.dataUrl !== 'string' || !/^data:image\/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=\s]*$/i.test(raw.dataUrl)) return null;
    return { name: String(raw.name || 'image'), dataUrl: raw.dataUrl, width: Number(raw.width) || 0, height: Number(raw.height) || 0 };
  }

  function cleanMessage(raw) {
    if (!raw || !['user', 'assistant', 'error'].includes(raw.role)) return null;
    const message = { role: raw.role, text: String(raw.text ?? ''), createdAt: Number(raw.createdAt) || Date.now() };
    if (raw.role === 'user') message.images = (Array.isArray(raw.images) ? raw.images : []).map(cleanImage).filter(Boolean);
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

  function cleanConversation(raw) {
    if (!raw || typeof raw !== 'object' || !Array.isArray(raw.messages)) return null;
    const preset = raw.system && PRESETS.some((p) => p.id === raw.system.preset) ? raw.system.preset : DEFAULT_PRESET;
    return {
      id: typeof raw.id === 'string' && raw.id ? raw.id : newId(),
      title: String(raw.title || ''),
      createdAt: Number(raw.createdAt) || Date.now(),
      updatedAt: Number(raw.updatedAt) || Date.now(),
      system: { preset, custom: String((raw.system && raw.system.custom) || '') },
      messages: raw.messages.map(cleanMessage).filter(Boolean),
    };
  }

  async function importFile(file) {
    let parsed;
    try {
      parsed = JSON.parse(await file.text());
    } catch (err) {
      toast(`“${file.name}” is not valid JSON: ${err.message}`, 'error');
      return;
    }
    const raws = Array.isArray(parsed) ? parsed : Array.isArray(parsed && parsed.conversations) ? parsed.conversations : [parsed];
    const conversations = raws.map(cleanConversation).filter(Boolean);
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

  // ---------------------------------------------------------------- events

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

    dom.attach.addEventListener('click', () => dom.fileInput.click());
    dom.dropZone.addEventListener('click', () => dom.fileInput.click());
    dom.fileInput.addEventListener('change', () => {
      addFiles(dom.fileInput.files);
      dom.fileInput.value = '';
    });
    document.addEventListener('paste', (event) => {
      const files = [...(event.clipboardData ? event.clipboardData.files : [])].filter((f) => f.type.startsWith('image/'));
      if (files.length === 0) return;
      event.preventDefault();
      addFiles(files);
    });
    let dragDepth = 0;
    const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes('Files');
    document.addEventListener('dragenter', (event) => {
      if (!hasFiles(event)) return;
      dragDepth++;
      dom.dropOverlay.hidden = false;
    });
    document.addEventListener('dragleave', (event) => {
      if (!hasFiles(event)) return;
      dragDepth = Math.max(0, dragDepth - 1);
      if (dragDepth === 0) dom.dropOverlay.hidden = true;
    });
    document.addEventListener('dragover', (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    document.addEventListener('drop', (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      dragDepth = 0;
      dom.dropOverlay.hidden = true;
      addFiles(event.dataTransfer.files);
    });

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
      localStorage.setItem(STORAGE_KEYS.system, JSON.stringify(state.current.system));
      renderSystem();
      if (dom.presetSelect.value === 'custom') dom.systemCustom.focus();
      if (isSaved(state.current)) persist(state.current);
    });
    let customTimer = 0;
    dom.systemCustom.addEventListener('input', () => {
      state.current.system.custom = dom.systemCustom.value;
      localStorage.setItem(STORAGE_KEYS.system, JSON.stringify(state.current.system));
      clearTimeout(customTimer);
      if (isSaved(state.current)) customTimer = setTimeout(() => persist(state.current), 400);
    });
    dom.systemText.addEventListener('click', () => dom.systemText.classList.toggle('expanded'));

    dom.exportOne.addEventListener('click', () => {
      download(`glimpse-${slug(titleFor(state.current))}.json`, exportData([state.current]));
    });
    dom.exportAll.addEventListener('click', () => {
      download(`glimpse-conversations-${new Date().toISOString().slice(0, 10)}.json`, exportData(state.conversations));
    });
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

  // ---------------------------------------------------------------- start

  async function start() {
    dom.presetSelect.replaceChildren(...PRESETS.map((p) => el('option', { value: p.id, text: p.name })));
    dom.detail.replaceChildren(...DETAIL_LEVELS.map(([value, text]) => el('option', { value, text })));
    bindEvents();
    try {
      state.conversations = (await store.all()).map(cleanConversation).filter(Boolean).sort((a, b) => b.updatedAt - a.updatedAt);
    } catch (err) {
      toast('Saved conversations are unavailable (browser storage is blocked): ' + (err && err.message), 'error');
    }
    const lastId = localStorage.getItem(STORAGE_KEYS.current);
    openConversation(state.conversations.find((c) => c.id === lastId) || newConversation());
    refreshServer();
  }

  start();
})();
