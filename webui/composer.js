// The composer's state on screen: Send or Stop, Send enabled only with something to send and
// every image ready, the settings summary under it, and the prompt box growing with its text.
import { dom } from './dom.js';
import { state } from './state.js';

export function updateComposer() {
  const busy = Boolean(state.generation);
  const loading = state.pending.some((entry) => !entry.image);
  dom.send.hidden = busy;
  dom.stop.hidden = !busy;
  dom.send.disabled = loading || (!dom.prompt.value.trim() && state.pending.length === 0);
  dom.composer.classList.toggle('busy', busy);
  const { temperature, maxTokens } = state.settings;
  const detail = state.settings.detail && state.settings.detail !== 'auto' ? ` · ${state.settings.detail} detail` : '';
  dom.settingsSummary.textContent = `temperature ${temperature} · max ${maxTokens} tokens${detail}${state.settings.apiKey ? ' · API key set' : ''}`;
}

export function autoGrow() {
  dom.prompt.style.height = 'auto';
  dom.prompt.style.height = Math.min(dom.prompt.scrollHeight, window.innerHeight * 0.4) + 'px';
}
