// Attachments in the composer: images come from the file picker, drag and drop or the
// clipboard, are downscaled in the browser to what the server will use, and show as thumbnails
// (removable) until the question is sent. A video is played through in the browser, which takes
// its frames (2 a second, at most MAX_VIDEO_FRAMES, long side at most VIDEO_LONG_SIDE) and sends
// them as the video's frames; it shows as a strip of them.
import { updateComposer } from './composer.js';
import { dom, el, icon, showImage, toast } from './dom.js';
import { newId } from './format.js';
import { DEFAULT_MAX_LONG_SIDE } from './settings.js';
import { state } from './state.js';

const SERVER_IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp', 'image/gif', 'image/bmp']);
const VIDEO_FPS = 2;
const MAX_VIDEO_FRAMES = 32;
const VIDEO_LONG_SIDE = 448;

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

// Resolves when `target` fires `event`, rejects on its `error` event.
function once(target, event) {
  return new Promise((resolve, reject) => {
    const done = () => { target.removeEventListener('error', fail); resolve(); };
    const fail = () => { target.removeEventListener(event, done); reject(new Error('the browser cannot play it')); };
    target.addEventListener(event, done, { once: true });
    target.addEventListener('error', fail, { once: true });
  });
}

// Returns { name, frames: [dataUrl], fps, width, height }: frames evenly spread over the clip
// (each from the middle of its slice of time), `fps` the rate that puts each at its time.
async function prepareVideo(file) {
  const name = file.name || 'video';
  const url = URL.createObjectURL(file);
  try {
    const video = el('video', { preload: 'auto', src: url });
    video.muted = true;
    try {
      await once(video, 'loadeddata');
    } catch {
      throw new Error(`"${name}" is not a video this browser can play`);
    }
    const { duration, videoWidth, videoHeight } = video;
    if (!(duration > 0) || !Number.isFinite(duration) || !videoWidth || !videoHeight) throw new Error(`"${name}" has no frames to show`);
    const count = Math.max(2, Math.min(MAX_VIDEO_FRAMES, Math.floor(duration * VIDEO_FPS)));
    const scale = Math.min(1, VIDEO_LONG_SIDE / Math.max(videoWidth, videoHeight));
    const width = Math.max(1, Math.round(videoWidth * scale));
    const height = Math.max(1, Math.round(videoHeight * scale));
    const canvas = el('canvas', { width, height });
    const context = canvas.getContext('2d');
    const frames = [];
    for (let i = 0; i < count; i++) {
      video.currentTime = ((i + 0.5) * duration) / count;
      await once(video, 'seeked');
      context.drawImage(video, 0, 0, width, height);
      frames.push(canvas.toDataURL('image/jpeg', 0.9));
    }
    return { name, frames, fps: count / duration, width, height };
  } finally {
    URL.revokeObjectURL(url);
  }
}

export function addFiles(files) {
  const isVideo = (f) => f.type.startsWith('video/');
  const accepted = [...files].filter((f) => f.type.startsWith('image/') || isVideo(f) || !f.type);
  if (accepted.length < files.length) toast('Only images and videos can be attached.', 'error');
  for (const file of accepted) {
    const video = isVideo(file);
    const entry = { id: newId(), name: file.name || (video ? 'video' : 'pasted image'), image: null, video: null };
    state.pending.push(entry);
    (video ? prepareVideo(file) : prepareImage(file)).then((prepared) => {
      if (video) entry.video = prepared;
      else entry.image = prepared;
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
    if (entry.video) {
      const { video } = entry;
      return el('div', { class: 'thumb video', title: `${video.name} · ${video.frames.length} frames` },
        el('img', { src: video.frames[0], alt: video.name, onclick: () => showImage(video.frames[0], video.name) }),
        el('span', { class: 'frame-count', text: `${video.frames.length}` }), remove);
    }
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
