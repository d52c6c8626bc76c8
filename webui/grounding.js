// Grounding detections: the boxes and points the server found in an answer (its
// `glimpse.detections` extension; the bbox_2d / point_2d JSON itself is parsed by the server,
// src/grounding/parse.rs). Here: checking entries from the server or an imported file, one colour
// per label, the answer text each came from, the images they index, and the shapes to draw.
// Pure (no DOM, no globals), so Node tests import it; overlay.js draws.

// Box colours, in the order src/grounding/draw.rs uses them for `glimpse run --draw`.
export const PALETTE = ['#e6194b', '#3cb44b', '#0082c8', '#f58230', '#911eb4', '#46f0f0', '#f032e6', '#ffe119'];

/**
 * One detection as the page keeps it, or null when malformed:
 * { image, label, bbox: [x1, y1, x2, y2] | point: [x, y], span?: [from, to] }
 * with pixel coordinates of the image as sent and `span` the answer's characters (code points)
 * the detection was written in. A box wins over a point when an entry has both.
 */
export function cleanDetection(raw) {
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

/** The well-formed entries of `list` (anything else gives none). */
export function cleanDetections(list) {
  return Array.isArray(list) ? list.map(cleanDetection).filter(Boolean) : [];
}

/** One colour per distinct label, in order of first appearance (as `glimpse run --draw`). */
export function labelColours(detections) {
  const labels = [];
  return detections.map((d) => {
    let index = labels.indexOf(d.label);
    if (index < 0) index = labels.push(d.label) - 1;
    return PALETTE[index % PALETTE.length];
  });
}

/**
 * The text of each detection's span in `text` (spans count code points, as the server does),
 * or null for a detection without a span.
 */
export function detectionSnippets(text, detections) {
  const chars = Array.from(text);
  return detections.map((d) => (d.span ? chars.slice(d.span[0], d.span[1]).join('') : null));
}

/**
 * The images of the user messages before `message` in `messages`, in order: the request's
 * images, which a detection's `image` index counts.
 */
export function imagesBefore(messages, message) {
  const images = [];
  for (const m of messages) {
    if (m === message) break;
    if (m.role === 'user') images.push(...m.images);
  }
  return images;
}

/**
 * What to draw for detection `d` over an image of `width` × `height` pixels (the SVG's viewBox):
 * { kind: 'rect', x, y, width, height, strokeWidth } for a box (at least 1 px each way), or
 * { kind: 'circle', cx, cy, r } for a point.
 */
export function detectionShape(d, width, height) {
  const stroke = Math.max(2, Math.min(width, height) / 200);
  if (d.bbox) {
    const [x1, y1, x2, y2] = d.bbox;
    return { kind: 'rect', x: x1, y: y1, width: Math.max(1, x2 - x1), height: Math.max(1, y2 - y1), strokeWidth: stroke };
  }
  const [x, y] = d.point;
  return { kind: 'circle', cx: x, cy: y, r: stroke * 2.5 };
}
