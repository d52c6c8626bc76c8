// Unit tests of the markdown renderer (webui/markdown.js): its HTML output and its tree.
// Run: node --test webui/test/*.test.mjs
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { MARKDOWN_ANSWER } from '../../tests/browser/markdown_answer.mjs';
import { escapeHtml, markdownToHtml as html, parseMarkdown, TAGS } from '../markdown.js';

const LINK = 'target="_blank" rel="noopener noreferrer nofollow"';

// Every element tag in a tree, depth first.
function tags(nodes, out = []) {
  for (const node of nodes) {
    if (typeof node === 'string') continue;
    out.push(node.tag);
    if (node.children) tags(node.children, out);
  }
  return out;
}

// The concatenated text of a tree (what textContent gives on the page).
function text(nodes) {
  return nodes.map((n) => (typeof n === 'string' ? n : n.tag === 'code-block' ? n.code : n.tag === 'math' ? n.tex : text(n.children))).join('');
}

describe('HTML from the model is text, never markup', () => {
  const hostile = [
    '<script>window.__pwned = 1</script>',
    '<img src=x onerror="alert(1)">',
    '<iframe src="evil.html"></iframe>',
    '<a href="javascript:alert(1)">click</a>',
    '<b onmouseover="alert(1)">bold</b>',
    '<style>body{display:none}</style>',
    '<svg onload=alert(1)>',
  ];

  it('escapes tags and quotes in paragraphs', () => {
    assert.equal(html('a <script>alert("x")</script> & \'b\''),
      '<p>a &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;b&#39;</p>');
    assert.equal(html('<img src=x onerror=alert(1)>'), '<p>&lt;img src=x onerror=alert(1)&gt;</p>');
  });

  it('escapes in every block kind: heading, quote, list, table, code', () => {
    for (const payload of hostile) {
      const doc = [`# ${payload}`, '', `> ${payload}`, '', `- ${payload}`, '', `| ${payload} |`, '|---|', `| ${payload} |`,
        '', '```html', payload, '```', '', `**${payload}** *${payload}* \`${payload}\``].join('\n');
      const out = html(doc);
      assert.doesNotMatch(out, /<(script|img|iframe|style|svg|b)[\s>]/i, out);
      assert.doesNotMatch(out, /<a [^>]*href="javascript:/i, out);
      assert.ok(out.includes(escapeHtml(payload)), `the payload is kept as text: ${out}`);
      // The tree only holds the renderer's own tags; the payload survives as text.
      for (const tag of tags(parseMarkdown(doc))) assert.ok(TAGS.has(tag), tag);
      assert.ok(text(parseMarkdown(doc)).includes(payload));
    }
  });

  it('escapeHtml escapes the five HTML specials', () => {
    assert.equal(escapeHtml(`<a href="x" title='y'>&</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  });
});

describe('links', () => {
  it('links http(s) and mailto, with safe rel and target', () => {
    assert.equal(html('See [the docs](https://example.com/docs).'),
      `<p>See <a href="https://example.com/docs" ${LINK}>the docs</a>.</p>`);
    assert.equal(html('[mail](mailto:a@b.c)'), `<p><a href="mailto:a@b.c" ${LINK}>mail</a></p>`);
  });

  it('leaves javascript:, data: and relative links as plain text', () => {
    for (const md of ['[x](javascript:alert(1))', '[x](data:text/html,hi)', '[x](/local)', '[x](JavaScript:alert(1))']) {
      assert.deepEqual(tags(parseMarkdown(md)), ['p'], md);
      assert.equal(html(md), `<p>${escapeHtml(md)}</p>`);
    }
  });

  it('escapes quotes in hrefs, so a URL cannot add attributes', () => {
    assert.equal(html('[t](https://a.b/"onmouseover="x)'), `<p><a href="https://a.b/&quot;onmouseover=&quot;x" ${LINK}>t</a></p>`);
  });

  it('links bare URLs without trailing punctuation', () => {
    assert.equal(html('Go to https://x.org/p?q=1. Then stop'),
      `<p>Go to <a href="https://x.org/p?q=1" ${LINK}>https://x.org/p?q=1</a>. Then stop</p>`);
  });

  it('formats the link text', () => {
    assert.equal(html('[**bold** link](https://e.com)'), `<p><a href="https://e.com" ${LINK}><strong>bold</strong> link</a></p>`);
  });
});

describe('code', () => {
  it('renders a fenced block with its language, contents verbatim', () => {
    assert.equal(html('```python\nif a < b and **c**:\n    pass\n```'),
      '<div class="code-block"><div class="code-head"><span>python</span></div>'
      + '<pre><code>if a &lt; b and **c**:\n    pass</code></pre></div>');
  });

  it('says "text" without a language, and accepts ~~~ and longer fences', () => {
    assert.equal(parseMarkdown('~~~\nx\n~~~')[0].language, '');
    assert.match(html('~~~\nx\n~~~'), /<span>text<\/span>/);
    const nested = parseMarkdown('````md\n```js\ninner\n```\n````\nafter');
    assert.deepEqual(nested[0], { tag: 'code-block', language: 'md', code: '```js\ninner\n```' });
    assert.deepEqual(nested[1], { tag: 'p', attrs: {}, children: ['after'] });
  });

  it('runs an unclosed fence (a streaming answer) to the end', () => {
    assert.deepEqual(parseMarkdown('Boxes:\n```json\n[{"bbox_2d": [1, 2'), [
      { tag: 'p', attrs: {}, children: ['Boxes:'] },
      { tag: 'code-block', language: 'json', code: '[{"bbox_2d": [1, 2' },
    ]);
  });

  it('renders code spans, trimming one space each side', () => {
    assert.equal(html('Use `a < b` or `` ` `` or ` x `'), '<p>Use <code>a &lt; b</code> or <code>`</code> or <code>x</code></p>');
  });

  it('normalizes CRLF line ends and tabs', () => {
    assert.equal(parseMarkdown('```\r\n\tx\r\n```')[0].code, '    x');
  });
});

describe('blocks', () => {
  it('maps # to h2 (the page title is the h1), capped at h6, closing #s removed', () => {
    assert.equal(html('# One #'), '<h2>One</h2>');
    assert.equal(html('##### Five'), '<h6>Five</h6>');
    assert.equal(html('###### Six'), '<h6>Six</h6>');
    assert.equal(html('#NoSpace'), '<p>#NoSpace</p>');
  });

  it('keeps line breaks inside a paragraph and splits paragraphs on blank lines', () => {
    assert.equal(html('line 1\nline 2\n\nnext'), '<p>line 1<br>line 2</p><p>next</p>');
  });

  it('renders rules and quotes', () => {
    assert.equal(html('a\n\n---\n\n> quoted\n> more'), '<p>a</p><hr><blockquote><p>quoted<br>more</p></blockquote>');
  });
});

describe('lists', () => {
  it('renders bullet and ordered lists, keeping the start number', () => {
    assert.equal(html('- a\n- b'), '<ul><li><p>a</p></li><li><p>b</p></li></ul>');
    assert.equal(html('3. x\n4. y'), '<ol start="3"><li><p>x</p></li><li><p>y</p></li></ol>');
    assert.equal(html('1) x'), '<ol><li><p>x</p></li></ol>');
  });

  it('marks lists with blank lines between items as loose', () => {
    assert.equal(html('- a\n\n- b'), '<ul class="loose"><li><p>a</p></li><li><p>b</p></li></ul>');
  });

  it('nests indented lists and joins lazy continuation lines', () => {
    assert.equal(html('1. first item\n2. second item\n   - nested bullet'),
      '<ol><li><p>first item</p></li><li><p>second item</p><ul><li><p>nested bullet</p></li></ul></li></ol>');
    assert.equal(html('- item\ncontinued'), '<ul><li><p>item<br>continued</p></li></ul>');
  });

  it('starts a new list when the marker kind changes', () => {
    assert.deepEqual(tags(parseMarkdown('- a\n1. b')), ['ul', 'li', 'p', 'ol', 'li', 'p']);
  });
});

describe('tables', () => {
  it('renders header, body, alignment and escaped pipes', () => {
    assert.equal(html('| Object | Count | Colour |\n|:--|--:|:-:|\n| square \\| box | 1 | <b>blue</b> |'),
      '<div class="table-wrap"><table><thead><tr>'
      + '<th style="text-align: left">Object</th><th style="text-align: right">Count</th><th style="text-align: center">Colour</th>'
      + '</tr></thead><tbody><tr>'
      + '<td style="text-align: left">square | box</td><td style="text-align: right">1</td><td style="text-align: center">&lt;b&gt;blue&lt;/b&gt;</td>'
      + '</tr></tbody></table></div>');
  });

  it('keeps alignment as a property of the cell node (the page sets style.textAlign, allowed by its CSP)', () => {
    const [wrap] = parseMarkdown('a | b\n--|--:\n1 | 2');
    const head = wrap.children[0].children[0].children[0];
    assert.deepEqual(head.children.map((cell) => [cell.tag, cell.align, cell.attrs]), [['th', undefined, {}], ['th', 'right', {}]]);
  });

  it('fills missing cells, formats cells inline, and ends at a blank line', () => {
    assert.equal(html('| a | b |\n|---|---|\n| **x** |\n\nafter'),
      '<div class="table-wrap"><table><thead><tr><th>a</th><th>b</th></tr></thead>'
      + '<tbody><tr><td><strong>x</strong></td><td></td></tr></tbody></table></div><p>after</p>');
  });

  it('needs a separator row', () => {
    assert.equal(html('a | b\nc | d'), '<p>a | b<br>c | d</p>');
  });
});

describe('inline formatting', () => {
  it('renders strong, emphasis and strikethrough', () => {
    assert.equal(html('**b** __B__ *i* _j_ ~~d~~'), '<p><strong>b</strong> <strong>B</strong> <em>i</em> <em>j</em> <del>d</del></p>');
  });

  it('never emphasizes inside words or arithmetic', () => {
    assert.equal(html('2*3*4 and snake_case_name'), '<p>2*3*4 and snake_case_name</p>');
  });

  it('honours backslash escapes', () => {
    assert.equal(html('\\*not em\\* and \\_no\\_ and 1\\. x'), '<p>*not em* and _no_ and 1. x</p>');
  });

  it('keeps text runs split where markup was (the grounding overlay searches text nodes)', () => {
    assert.deepEqual(parseMarkdown('a \\* b')[0].children, ['a ', '*', ' b']);
  });
});

describe('formulas', () => {
  const math = (tex, display = false) => ({ tag: 'math', display, tex });

  it('reads the four delimiters, inline and displayed', () => {
    assert.deepEqual(parseMarkdown('Area $\\pi r^2$ and \\(e^{i\\pi}\\).'),
      [{ tag: 'p', attrs: {}, children: ['Area ', math('\\pi r^2'), ' and ', math('e^{i\\pi}'), '.'] }]);
    assert.deepEqual(parseMarkdown('$$\\int_0^1 x\\,dx$$'), [math('\\int_0^1 x\\,dx', true)]);
    assert.deepEqual(parseMarkdown('\\[ a^2 + b^2 = c^2 \\]'), [math('a^2 + b^2 = c^2', true)]);
    assert.deepEqual(parseMarkdown('$x$'), [{ tag: 'p', attrs: {}, children: [math('x')] }]);
  });

  it('keeps a displayed formula whole over lines that look like markdown', () => {
    const tex = '\\begin{aligned}\n1. & x \\\\\n\n- y & = 2 \\\\\n# z\n\\end{aligned}';
    assert.deepEqual(parseMarkdown('Solve:\n$$\n' + tex + '\n$$\nDone.'), [
      { tag: 'p', attrs: {}, children: ['Solve:'] }, math(tex, true), { tag: 'p', attrs: {}, children: ['Done.'] }]);
    assert.deepEqual(tags(parseMarkdown('\\[\nx\n\n- y\n\\]')), ['math']);
  });

  it('leaves prices, escapes, code and unclosed delimiters as text', () => {
    for (const plain of ['It costs $5 and $10.', 'between $5-$10', 'a $ b $ c', 'one $ sign', 'x$y$', '\\$5 or \\$6$']) {
      assert.deepEqual(tags(parseMarkdown(plain)), ['p'], plain);
    }
    assert.equal(html('\\$5'), '<p>$5</p>');
    assert.equal(html('`$x$`'), '<p><code>$x$</code></p>');
    assert.equal(html('$$\nno end'), '<p>$$<br>no end</p>');
  });

  it('serializes formulas as escaped TeX in their \\( \\) or \\[ \\] delimiters', () => {
    assert.equal(html('$a<b$'), '<p><span class="math">\\(a&lt;b\\)</span></p>');
    assert.equal(html('$$\\text{<script>}$$'), '<span class="math display">\\[\\text{&lt;script&gt;}\\]</span>');
  });

  it('is parsed inside emphasis and lists', () => {
    assert.deepEqual(tags(parseMarkdown('**$x$** and\n- $y_1 * y_2$')), ['p', 'strong', 'math', 'ul', 'li', 'p', 'math']);
  });
});

it('renders the answer the browser test sends (headings, lists, table, code, quote, links)', () => {
  assert.deepEqual(tags(parseMarkdown(MARKDOWN_ANSWER)), [
    'h3', 'p', 'strong', 'em', 'code', 'ol', 'li', 'p', 'li', 'p', 'ul', 'li', 'p',
    'div', 'table', 'thead', 'tr', 'th', 'th', 'th', 'tbody', 'tr', 'td', 'td', 'td', 'tr', 'td', 'td', 'td',
    'code-block', 'blockquote', 'p', 'p', 'a']);
  const out = html(MARKDOWN_ANSWER);
  assert.ok(out.includes('&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;'));
  assert.ok(out.includes('&lt;script&gt;window.__pwned=2&lt;/script&gt;'));
  assert.ok(out.includes('<td style="text-align: left">square | box</td>'));
  assert.ok(out.includes('&lt;b&gt;blue&lt;/b&gt;'));
  assert.ok(out.includes('<pre><code>&lt;script&gt;window.__pwned = 3&lt;/script&gt;</code></pre>'));
  assert.ok(out.includes('<blockquote><p>quoted &lt;iframe src=&quot;evil.html&quot;&gt;&lt;/iframe&gt;</p></blockquote>'));
  assert.equal(out.match(/<a /g).length, 1);
});

it('renders empty and blank input as nothing', () => {
  assert.deepEqual(parseMarkdown(''), []);
  assert.equal(html('  \n\n \t\n'), '');
});
