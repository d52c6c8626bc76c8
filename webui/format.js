// Small pure helpers: ids, file-name slugs, and numbers, durations and dates as the page shows them.
// No DOM, so Node can import this file.

// crypto.randomUUID only exists in secure contexts; the page is often opened over plain http on a LAN.
export function newId() {
  return Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 10);
}

export function slug(text) {
  return (text || 'conversation').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'conversation';
}

export function formatNumber(value, digits) {
  return value.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function formatMs(ms) {
  if (ms < 1) return '<1 ms';
  return ms >= 1000 ? formatNumber(ms / 1000, 2) + ' s' : formatNumber(ms, 0) + ' ms';
}

export function formatRate(tokensPerSecond) {
  return formatNumber(tokensPerSecond, tokensPerSecond >= 100 ? 0 : 1);
}

export function relativeTime(time) {
  const minutes = Math.round((Date.now() - time) / 60000);
  if (minutes < 1) return 'just now';
  if (minutes < 60) return minutes + ' min ago';
  const date = new Date(time);
  const today = new Date();
  if (date.toDateString() === today.toDateString()) return date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  return date.toLocaleDateString(undefined, { month: 'short', day: 'numeric', year: date.getFullYear() === today.getFullYear() ? undefined : 'numeric' });
}
