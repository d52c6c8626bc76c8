// Model answers on the page: DOM nodes built from markdown.js's tree (text nodes and elements
// created one by one, never innerHTML), with a copy button on each code block; formulas and code
// are typeset and coloured by rich-text.js.
import { copyButton, el } from './dom.js';
import { parseMarkdown, TAGS } from './markdown.js';
import { highlight, typeset } from './rich-text.js';

function codeBlock(code, language) {
  const codeElement = el('code', { text: code });
  highlight(codeElement, code, language);
  return el('div', { class: 'code-block' },
    el('div', { class: 'code-head' },
      el('span', { text: language || 'text' }),
      copyButton(() => code, 'Copy code')),
    el('pre', null, codeElement));
}

function formula(tex, display) {
  const element = el(display ? 'div' : 'span', { class: display ? 'math display' : 'math', text: tex });
  typeset(element, tex, display);
  return element;
}

function toDom(node) {
  if (typeof node === 'string') return document.createTextNode(node);
  if (!TAGS.has(node.tag)) throw new Error('markdown: unexpected element ' + node.tag);
  if (node.tag === 'code-block') return codeBlock(node.code, node.language);
  if (node.tag === 'math') return formula(node.tex, node.display);
  const element = el(node.tag, node.attrs);
  if (node.align) element.style.textAlign = node.align; // a style attribute would break the page's CSP
  for (const child of node.children) element.append(toDom(child));
  return element;
}

/** `text` rendered as markdown, in a DocumentFragment. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  for (const node of parseMarkdown(text)) fragment.append(toDom(node));
  return fragment;
}
