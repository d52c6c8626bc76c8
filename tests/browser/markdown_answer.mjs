// The hostile markdown answer the browser test streams into the page (faked with page.route)
// and the page's markdown unit test parses (webui/test/markdown.test.mjs): headings, lists,
// a table, code, a quote, links, and HTML that must come out as text.
export const MARKDOWN_ANSWER = [
  '## Findings',
  'Here is **bold**, *italic* and `inline code`, plus <img src=x onerror="window.__pwned=1"> and <script>window.__pwned=2</script>.',
  '',
  '1. first item',
  '2. second item',
  '   - nested bullet',
  '',
  '| Object | Count | Colour |',
  '|:--|--:|:-:|',
  '| circle | 2 | red |',
  '| square \\| box | 1 | <b>blue</b> |',
  '',
  '```html',
  '<script>window.__pwned = 3</script>',
  '```',
  '',
  '> quoted <iframe src="evil.html"></iframe>',
  '',
  'See [the docs](https://example.com/docs) but not [this](javascript:window.__pwned=4).',
].join('\n');
