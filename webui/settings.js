// Settings: temperature, max tokens, image detail and API key, kept in localStorage with the
// system prompt new conversations start with; and the Settings dialog that edits them and shows
// what the server announced.
import { dom, el } from './dom.js';
import { formatNumber } from './format.js';
import { DEFAULT_PRESET, isPreset } from './presets.js';

export const DEFAULT_SETTINGS = { temperature: 0.7, maxTokens: 1024, apiKey: '', detail: 'auto' };
// Image detail sent as OpenAI's image_url.detail: the server maps it to a pixel budget.
export const DETAIL_LEVELS = [
  ['auto', 'Auto — the server\'s default'],
  ['low', 'Low — at most 256 tokens per image, fastest'],
  ['high', 'High — full resolution: small text, precise boxes'],
];
export const DEFAULT_MAX_LONG_SIDE = 2048; // used when the server does not announce its image budget
export const STORAGE_KEYS = { settings: 'glimpse.settings', current: 'glimpse.current', system: 'glimpse.system' };

export function loadSettings() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEYS.settings) || '{}');
    return { ...DEFAULT_SETTINGS, ...saved };
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
}

export function saveSettings(settings) {
  localStorage.setItem(STORAGE_KEYS.settings, JSON.stringify(settings));
}

/** The system prompt choice ({ preset, custom }) made last: new conversations start with it. */
export function lastSystem() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEYS.system) || '{}');
    const preset = isPreset(saved.preset) ? saved.preset : DEFAULT_PRESET;
    return { preset, custom: typeof saved.custom === 'string' ? saved.custom : '' };
  } catch {
    return { preset: DEFAULT_PRESET, custom: '' };
  }
}

export function rememberSystem(system) {
  localStorage.setItem(STORAGE_KEYS.system, JSON.stringify(system));
}

/** Fills the options of the image detail select (once, at start). */
export function fillDetailOptions() {
  dom.detail.replaceChildren(...DETAIL_LEVELS.map(([value, text]) => el('option', { value, text })));
}

/** Opens the Settings dialog on `settings`, with what the page knows of the server. */
export function openSettingsDialog(settings, server) {
  const { temperature, maxTokens, apiKey } = settings;
  dom.temperatureRange.value = temperature;
  dom.temperatureValue.textContent = temperature;
  dom.maxTokens.value = maxTokens;
  dom.apiKey.value = apiKey;
  dom.detail.value = DETAIL_LEVELS.some(([level]) => level === settings.detail) ? settings.detail : 'auto';
  const { model, budgetPixels, maxPixels, state: status, detail } = server;
  const megapixels = (pixels) => `${formatNumber(pixels / 1e6, 1)} MP`;
  const rows = [
    ['Server', status === 'ok' ? 'connected' : detail || status],
    ['Model', model || '—'],
    ['Images sent at', budgetPixels ? `≤ ${megapixels(budgetPixels)} (server budget)` : `≤ ${DEFAULT_MAX_LONG_SIDE} px on the longer side`],
  ];
  if (maxPixels) rows.push(['Server refuses', `images over ${megapixels(maxPixels)}`]);
  dom.serverInfo.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  dom.settingsDialog.showModal();
}

/** The settings as entered in the dialog. */
export function settingsFromDialog() {
  const maxTokens = Math.round(Number(dom.maxTokens.value));
  return {
    temperature: Number(dom.temperatureRange.value),
    maxTokens: maxTokens > 0 ? maxTokens : DEFAULT_SETTINGS.maxTokens,
    apiKey: dom.apiKey.value.trim(),
    detail: dom.detail.value,
  };
}
