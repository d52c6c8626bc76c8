// Client of the server's OpenAI-compatible API: chat completions read as a server-sent event
// stream, the model list and health check that say whether the server is ready (and what image
// sizes it accepts), and error responses turned into Error objects. Uses fetch with URLs relative
// to the page (so the server can sit under a path prefix); no DOM.

export function authHeaders(apiKey) {
  return apiKey ? { Authorization: 'Bearer ' + apiKey } : {};
}

/** An Error from an OpenAI-style error body ({ error: { message, type } }), with `status` and `type`. */
export function apiError(status, body, fallback) {
  const info = body && typeof body === 'object' && body.error && typeof body.error === 'object' ? body.error : {};
  const error = new Error(String(info.message || fallback || 'request failed'));
  error.status = status;
  error.type = info.type ? String(info.type) : '';
  return error;
}

export async function errorFromResponse(response) {
  const text = await response.text().catch(() => '');
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  const fallback = text.trim() ? text.trim().slice(0, 500) : `${response.status} ${response.statusText}`.trim();
  return apiError(response.status, body, fallback);
}

/**
 * Yields the JSON of each `data:` event of a `text/event-stream` response until `[DONE]` or its
 * end. A malformed event, or one carrying `error`, throws.
 */
export async function* readEventStream(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split('\n');
    buffer = lines.pop();
    for (const raw of lines) {
      const line = raw.replace(/\r$/, '');
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') {
        reader.cancel().catch(() => {});
        return;
      }
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        throw new Error('the server sent a malformed stream event: ' + data.slice(0, 200));
      }
      if (chunk && chunk.error) throw apiError(response.status, chunk, 'the server reported an error');
      yield chunk;
    }
  }
}

/** Yields parsed `chat.completion.chunk` objects (or one `chat.completion` if the server did not stream). */
export async function* chatStream(body, { signal, apiKey }) {
  const response = await fetch('v1/chat/completions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', ...authHeaders(apiKey) },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await errorFromResponse(response);
  if (!(response.headers.get('content-type') || '').includes('text/event-stream')) {
    yield await response.json();
    return;
  }
  yield* readEventStream(response);
}

/** The first positive number under `key` in the sources or their `limits` objects. */
export function announced(key, ...sources) {
  for (const source of sources) {
    for (const holder of [source, source && source.limits]) {
      const value = holder && typeof holder === 'object' ? holder[key] : undefined;
      if (Number.isFinite(value) && value > 0) return value;
    }
  }
  return null;
}

/**
 * Asks GET v1/models and GET health how the server is: the fields to merge into the page's
 * server state ({ state: 'ok' | 'loading' | 'auth' | 'error' | 'offline', detail, model, and when
 * it answered, budgetPixels and maxPixels }).
 */
export async function probeServer(apiKey) {
  try {
    const [modelsResponse, healthResponse] = await Promise.all([
      fetch('v1/models', { headers: authHeaders(apiKey) }),
      fetch('health', { headers: authHeaders(apiKey) }).catch(() => null),
    ]);
    const health = healthResponse ? await healthResponse.json().catch(() => null) : null;
    if (modelsResponse.status === 401) return { state: 'auth', detail: 'API key needed', model: null };
    if (!modelsResponse.ok) {
      const err = await errorFromResponse(modelsResponse);
      return { state: modelsResponse.status === 503 ? 'loading' : 'error', detail: err.message, model: null };
    }
    const models = await modelsResponse.json();
    const model = models && Array.isArray(models.data) ? models.data[0] : null;
    const ready = !healthResponse || healthResponse.ok;
    return {
      state: ready ? 'ok' : 'loading',
      model: model && model.id ? String(model.id) : null,
      budgetPixels: announced('image_budget_pixels', model, health, models),
      maxPixels: announced('max_image_pixels', model, health, models),
      detail: ready ? '' : 'model loading',
    };
  } catch {
    return { state: 'offline', detail: 'server unreachable', model: null };
  }
}

/** The sentence shown for a failed request. */
export function describeError(err) {
  if (err.status === 401) return `${err.message} — set the API key in Settings.`;
  if (err.status) return `${err.message} (HTTP ${err.status}${err.type ? ', ' + err.type : ''})`;
  if (err instanceof TypeError) return 'Could not reach the server: ' + err.message;
  return err.message || String(err);
}
