// The server's status in the sidebar: asks it whether it is ready (and its model and image
// limits), polling every 2 s while it is loading or unreachable.
import { probeServer } from './api.js';
import { dom } from './dom.js';
import { state } from './state.js';

const SERVER_POLL_MS = 2000; // while the server is loading or unreachable

let serverPoll = 0;
export async function refreshServer() {
  const server = state.server;
  clearTimeout(serverPoll);
  Object.assign(server, await probeServer(state.settings.apiKey));
  if (server.state !== 'ok' && server.state !== 'auth') serverPoll = setTimeout(refreshServer, SERVER_POLL_MS);
  renderServerStatus();
}

function renderServerStatus() {
  const { state: status, model, detail } = state.server;
  dom.serverStatus.dataset.state = status;
  dom.serverStatus.textContent = status === 'ok' ? (model || 'ready') : detail;
  dom.serverStatus.title = status === 'ok' ? `Connected · model ${model || 'unknown'}` : detail;
}
