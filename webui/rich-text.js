// Formulas and code on the page, with libraries vendored into the binary (webui/vendor/, see
// scripts/vendor_webui.sh) and loaded only when an answer needs them: the first formula loads
// KaTeX and its stylesheet, the first code block with a language loads highlight.js. Until a
// library is there (or if it fails to load) the formula shows its TeX and the code stays plain.
//
// Neither library writes markup from the answer into the page: KaTeX builds its DOM node by node
// (trust off, so \href and \includegraphics render as errors), and highlight.js's HTML is read
// back as spans carrying a class and text only.
import { el } from './dom.js';

const KATEX = './vendor/katex-0.19.1/';
const HIGHLIGHT = './vendor/highlight-11.12.0/';

const loaded = new Map();

function stylesheet(href, media) {
  const link = el('link', { rel: 'stylesheet', href: new URL(href, import.meta.url).href, media });
  document.head.append(link);
}

// One load per library, shared by every caller.
function once(name, load) {
  if (!loaded.has(name)) loaded.set(name, load());
  return loaded.get(name);
}

function katex() {
  return once('katex', async () => {
    stylesheet(KATEX + 'katex.min.css');
    await import(KATEX + 'katex.min.js'); // a UMD build: it sets self.katex
    return self.katex;
  });
}

function highlightJs() {
  return once('highlight', async () => {
    stylesheet(HIGHLIGHT + 'github.min.css', '(prefers-color-scheme: light)');
    stylesheet(HIGHLIGHT + 'github-dark.min.css', '(prefers-color-scheme: dark)');
    return (await import(HIGHLIGHT + 'highlight.min.js')).default;
  });
}

/** Typesets `tex` into `element` (which shows the TeX until KaTeX is loaded). */
export function typeset(element, tex, display) {
  katex().then((library) => {
    library.render(tex, element, { displayMode: display, throwOnError: false, trust: false, output: 'htmlAndMathml' });
    element.classList.add('typeset');
  }, () => {});
}

// highlight.js's HTML for a code block as DOM: its <span class> elements and text, nothing else.
function spans(html) {
  const copy = (node) => {
    if (node.nodeType !== Node.ELEMENT_NODE) return document.createTextNode(node.textContent);
    if (node.tagName !== 'SPAN') return document.createTextNode(node.textContent);
    return el('span', { class: node.getAttribute('class') }, ...Array.from(node.childNodes, copy));
  };
  const parsed = new DOMParser().parseFromString('<pre>' + html + '</pre>', 'text/html');
  return Array.from(parsed.querySelector('pre').childNodes, copy);
}

/**
 * Colours the code in `codeElement` when highlight.js knows `language`. A block the page has
 * marked up meanwhile (grounding JSON with its detections marked) keeps its marks instead.
 */
export function highlight(codeElement, code, language) {
  if (!language) return;
  highlightJs().then((hljs) => {
    if (!hljs.getLanguage(language) || codeElement.childElementCount > 0) return;
    const { value } = hljs.highlight(code, { language, ignoreIllegals: true });
    codeElement.replaceChildren(...spans(value));
    codeElement.classList.add('hljs');
  }, () => {});
}
