// Image attachments in the composer: images come from the file picker, drag and drop or the
// clipboard, are downscaled in the browser to what the server will use, and show as thumbnails
// (removable) until the question is sent.
import { updateComposer } from './composer.js';
import { dom, el, icon, showImage, toast } from './dom.js';
import { newId } from './format.js';
import { DEFAULT_MAX_LONG_SIDE } from './settings.js';
import { state } from './state.js';

const SERVER_IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp', 'image/gif', 'image/bmp']);

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

export function addFiles(files) {
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

export function renderAttachments() {
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

/** Listens for images: the attach button and drop zone (file picker), paste, and drag and drop. */
export function bindAttachmentInputs() {
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
}
