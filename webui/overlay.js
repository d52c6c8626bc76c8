// Grounding overlay: an answer's boxes and points drawn as SVG over the images they refer to,
// with a legend per image and a show/hide toggle, and the detections' JSON in the answer text
// wrapped in <mark>s; hovering a box, a legend chip or a mark highlights all three.
import { el, showImage, svg } from './dom.js';
import { detectionShape, detectionSnippets, labelColours } from './grounding.js';

// Highlights detection `index` of an answer: its box, chip and JSON in the text.
function highlightDetection(container, index, on) {
  for (const node of container.querySelectorAll(`[data-detection="${index}"]`)) node.classList.toggle('active', on);
}

// Hovering `node` highlights everything of detection `index` in its message.
function hoverable(node, index) {
  const container = () => node.closest('.message') || document.body;
  node.addEventListener('mouseenter', () => highlightDetection(container(), index, true));
  node.addEventListener('mouseleave', () => highlightDetection(container(), index, false));
}

/**
 * The answer's detections over the images they refer to (`images`: the request's images, which
 * their `image` index counts), or null when none of them has its image. Coordinates are pixels
 * of the image as sent; the SVG's viewBox is that size, so it scales with the picture.
 */
export function groundingView(message, images) {
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
    const group = svg('g', { class: 'detection', 'data-detection': index, stroke: colour, fill: colour });
    const shape = detectionShape(d, image.width, image.height);
    if (shape.kind === 'rect') {
      const { x, y, width, height, strokeWidth } = shape;
      group.append(svg('rect', { x, y, width, height, fill: 'none', 'stroke-width': strokeWidth, 'vector-effect': 'non-scaling-stroke' }));
    } else {
      group.append(svg('circle', { cx: shape.cx, cy: shape.cy, r: shape.r, 'stroke-width': 0 }));
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

/** Wraps each detection's JSON in the rendered answer `root` in a <mark> that highlights with its box. */
export function markDetectionText(root, message) {
  const snippets = detectionSnippets(message.text, message.detections);
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let node = walker.nextNode();
  let from = 0;
  snippets.forEach((snippet, index) => {
    if (snippet === null) return;
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
