// Markdown renderer for model answers. Pure (no DOM, no globals), so Node tests import it.
// parseMarkdown turns text into a tree of plain objects; markdown-view.js builds DOM nodes from
// that tree and markdownToHtml serializes it as escaped HTML. Model output can never inject
// markup: every string in the tree is text, element tags come from the fixed set TAGS, and links
// only point at http(s) or mailto URLs.
//
// Tree nodes:
//   'text'                                   a text node
//   { tag, attrs, children }                 an element; attrs holds only class, href, target, rel, start
//   { tag: 'th' | 'td', align, … }           a table cell; align is 'left', 'right' or 'center' when set
//   { tag: 'code-block', language, code }    a fenced code block (the page adds a copy button)
//   { tag: 'math', display, tex }            a formula: $…$ or \(…\) inline, $$…$$ or \[…\] displayed
//                                            (the page typesets it with KaTeX, see rich-text.js)

export const TAGS = new Set(['p', 'h2', 'h3', 'h4', 'h5', 'h6', 'strong', 'em', 'del', 'code', 'a', 'br', 'hr',
  'blockquote', 'ul', 'ol', 'li', 'div', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'code-block', 'math']);

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const LIST_ITEM = /^( *)([-*+]|\d{1,9}[.)])( +|$)(.*)$/;
const MATH_BLOCK_OPEN = /^ {0,3}(\$\$|\\\[)/;
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
  /\$\$([\s\S]+?)\$\$/.source, // 10: displayed formula
  /\\\[([\s\S]+?)\\\]/.source, // 11: displayed formula
  /\\\(([\s\S]+?)\\\)/.source, // 12: inline formula
  // 13: inline formula; as in pandoc, $ then no space, no space then $ not before a digit
  // (so "$5 and $10" stays text)
  /(?<![\\\w$])\$(?=[^\s$])((?:\\[\s\S]|[^$\\\n])*?[^\s$\\])\$(?![\d$])/.source,
  /\\([\\`*_{}[\]()#+\-.!|~<>$])/.source, // 14: escaped character
  /\n/.source, // line break (chat output keeps its line breaks, OCR needs them)
].join('|'), 'g');

function element(tag, attrs, children) {
  return { tag, attrs: attrs || {}, children: children || [] };
}

function isTableStart(lines, i) {
  return i + 1 < lines.length && lines[i].includes('|') && lines[i + 1].includes('|')
    && lines[i + 1].includes('-') && TABLE_SEPARATOR.test(lines[i + 1]);
}

function startsBlock(lines, i) {
  const line = lines[i];
  return MATH_BLOCK_OPEN.test(line) || FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line)
    || LIST_ITEM.test(line) || isTableStart(lines, i);
}

function indentOf(line) {
  return line.length - line.trimStart().length;
}

// Appends the inline content of `text` to `parent`'s children. Plain text stays split where
// the markup was (one string per run), as the page's text nodes are.
function inline(text, parent) {
  const out = parent.children;
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[2] !== undefined) {
      const code = m[2].length > 2 && m[2].startsWith(' ') && m[2].endsWith(' ') ? m[2].slice(1, -1) : m[2];
      out.push(element('code', null, [code]));
    } else if (m[3] !== undefined || m[4] !== undefined) {
      out.push(inline(m[3] ?? m[4], element('strong')));
    } else if (m[5] !== undefined) {
      out.push(inline(m[5], element('del')));
    } else if (m[6] !== undefined || m[7] !== undefined) {
      out.push(inline(m[6] ?? m[7], element('em')));
    } else if (m[8] !== undefined) {
      out.push(inline(m[8], link(m[9])));
    } else if (m[10] !== undefined || m[11] !== undefined) {
      out.push(math(m[10] ?? m[11], true));
    } else if (m[12] !== undefined || m[13] !== undefined) {
      out.push(math(m[12] ?? m[13], false));
    } else if (m[14] !== undefined) {
      out.push(m[14]);
    } else if (m[0] === '\n') {
      out.push(element('br'));
    } else {
      out.push(link(m[0], m[0]));
    }
  }
  if (last < text.length) out.push(text.slice(last));
  return parent;
}

function math(tex, display) {
  return { tag: 'math', display, tex: tex.trim() };
}

function link(href, text) {
  return element('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow' }, text ? [text] : []);
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
  const row = (cells, tag) => element('tr', null, aligns.map((align, c) => {
    const cell = inline(cells[c] || '', element(tag));
    if (align) cell.align = align;
    return cell;
  }));
  const body = element('tbody');
  let j = i + 2;
  while (j < lines.length && lines[j].trim() && lines[j].includes('|')) body.children.push(row(splitRow(lines[j++]), 'td'));
  parent.children.push(element('div', { class: 'table-wrap' }, [
    element('table', null, [element('thead', null, [row(splitRow(lines[i]), 'th')]), body])]));
  return j;
}

function fence(lines, i, parent) {
  const [, marker, language] = FENCE.exec(lines[i]);
  const closing = new RegExp('^ {0,3}' + (marker[0] === '`' ? '`' : '~') + '{' + marker.length + ',}\\s*$');
  const body = [];
  let j = i + 1;
  while (j < lines.length && !closing.test(lines[j])) body.push(lines[j++]);
  parent.children.push({ tag: 'code-block', language, code: body.join('\n') });
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
  parent.children.push(blocks(inner, element('blockquote')));
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
  const node = element(ordered ? 'ol' : 'ul', loose ? { class: 'loose' } : null);
  const start = parseInt(first[2], 10);
  if (ordered && start !== 1) node.attrs.start = String(start);
  for (const item of items) node.children.push(blocks(item.lines, element('li')));
  parent.children.push(node);
  return j;
}

// A paragraph that is one displayed formula becomes that formula (a block of its own).
function pushParagraph(text, parent) {
  const p = inline(text, element('p'));
  const only = p.children.filter((child) => typeof child !== 'string' || child.trim());
  parent.children.push(only.length === 1 && only[0].tag === 'math' && only[0].display ? only[0] : p);
}

function paragraph(lines, i, parent) {
  const text = [lines[i]];
  let j = i + 1;
  while (j < lines.length && lines[j].trim() && !startsBlock(lines, j)) text.push(lines[j++]);
  pushParagraph(text.map((line) => line.trim()).join('\n'), parent);
  return j;
}

// $$ or \[ at the start of a line: the formula runs to its closing $$ or \], over blank lines and
// lines that would otherwise start a list or a heading. Unclosed, the line is a paragraph.
function mathBlock(lines, i, parent) {
  const close = MATH_BLOCK_OPEN.exec(lines[i])[1] === '$$' ? '$$' : '\\]';
  const first = lines[i].trim().slice(2);
  let j = i;
  let rest = first;
  while (!rest.includes(close)) {
    if (++j >= lines.length) return paragraph(lines, i, parent);
    rest = lines[j];
  }
  pushParagraph(lines.slice(i, j + 1).map((line) => line.trim()).join('\n'), parent);
  return j + 1;
}

function blocks(lines, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (!line.trim()) i++;
    else if (MATH_BLOCK_OPEN.test(line)) i = mathBlock(lines, i, parent);
    else if (FENCE.test(line)) i = fence(lines, i, parent);
    else if ((m = HEADING.exec(line))) {
      // '#' is h2: the page's own title is the h1.
      parent.children.push(inline(m[2], element('h' + Math.min(m[1].length + 1, 6))));
      i++;
    } else if (RULE.test(line)) {
      parent.children.push(element('hr'));
      i++;
    } else if (QUOTE.test(line)) i = quote(lines, i, parent);
    else if (LIST_ITEM.test(line)) i = list(lines, i, parent);
    else if (isTableStart(lines, i)) i = table(lines, i, parent);
    else i = paragraph(lines, i, parent);
  }
  return parent;
}

/** The block nodes of `text` (see the node shapes above). */
export function parseMarkdown(text) {
  const lines = text.replace(/\r\n?/g, '\n').replace(/\t/g, '    ').split('\n');
  return blocks(lines, { children: [] }).children;
}

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

function nodeHtml(node) {
  if (typeof node === 'string') return escapeHtml(node);
  if (node.tag === 'math') {
    const [open, close] = node.display ? ['\\[', '\\]'] : ['\\(', '\\)'];
    return `<span class="${node.display ? 'math display' : 'math'}">${escapeHtml(open + node.tex + close)}</span>`;
  }
  if (node.tag === 'code-block') {
    return `<div class="code-block"><div class="code-head"><span>${escapeHtml(node.language || 'text')}</span></div>`
      + `<pre><code>${escapeHtml(node.code)}</code></pre></div>`;
  }
  let attrs = Object.entries(node.attrs).map(([key, value]) => ` ${key}="${escapeHtml(value)}"`).join('');
  if (node.align) attrs += ` style="text-align: ${node.align}"`;
  if (node.tag === 'br' || node.tag === 'hr') return `<${node.tag}${attrs}>`;
  return `<${node.tag}${attrs}>${node.children.map(nodeHtml).join('')}</${node.tag}>`;
}

/** `text` rendered as HTML in which everything from the text is escaped. */
export function markdownToHtml(text) {
  return parseMarkdown(text).map(nodeHtml).join('');
}
