// poolgate dashboard. Plain DOM, no dependencies. Every stored value is put on the page with
// textContent (never innerHTML), so an account named "<img onerror=…>" shows as text.
'use strict';

const state = { token: sessionStorage.getItem('poolgate-token'), events: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'onclick') node.addEventListener('click', v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return node;
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401 && path !== '/api/login') { loggedOut(); }
  if (!resp.ok) throw new Error(data?.error?.message || data?.message || `HTTP ${resp.status}`);
  return data;
}

function show(view) {
  for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== view;
  for (const b of document.querySelectorAll('#nav button[data-view]')) b.classList.toggle('active', b.dataset.view === view);
  const load = { overview: loadOverview, pools: loadPools, usage: () => loadUsage(false), config: loadConfig, plugins: loadPlugins }[view];
  if (load) load().catch(report);
}

function report(e) { console.warn(e.message); }

function say(id, text, isError) {
  const p = document.getElementById(id);
  p.textContent = text;
  p.className = isError ? 'error' : 'message';
}

function loggedIn(token) {
  state.token = token;
  sessionStorage.setItem('poolgate-token', token);
  document.getElementById('nav').hidden = false;
  openEvents();
  show('overview');
}

function loggedOut() {
  state.token = null;
  sessionStorage.removeItem('poolgate-token');
  if (state.events) { state.events.close(); state.events = null; }
  document.getElementById('nav').hidden = true;
  show('login');
}

async function loadOverview() {
  const [sys, reps, pools, redis] = await Promise.all([api('GET', '/api/system'), api('GET', '/api/replicas'),
    api('GET', '/api/providers'), api('GET', '/api/redis/status')]);
  const rows = [['Type', sys.storage.type], ['Connected', sys.storage.connected], ['Degraded', sys.storage.degraded],
    ['Queued writes', sys.storage.queuedWrites]];
  if (redis.enabled) rows.push(['Redis', redis.url || ''], ['Key prefix', redis.keyPrefix || ''], ['Latency (ms)', redis.health?.latencyMs ?? '']);
  document.querySelector('#storage-status tbody').replaceChildren(...rows.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v))));
  const st = sys.storage;
  document.getElementById('overview-storage').replaceChildren(
    el('p', {}, `Storage: ${st.type} — `, el('span', { class: st.connected && !st.degraded ? 'good' : 'bad' }, st.connected && !st.degraded ? 'healthy' : 'degraded'),
      ` — version ${sys.appVersion}, replica ${sys.replicaId}`));
  const rbody = document.querySelector('#replicas tbody');
  rbody.replaceChildren(...reps.replicas.map(r => el('tr', {}, el('td', {}, r.id + (r.self ? ' (this one)' : '')), el('td', {}, r.hostname),
    el('td', {}, r.version), el('td', {}, r.inFlight), el('td', {}, new Date(r.seenAt).toLocaleTimeString()))));
  const sbody = document.querySelector('#pool-summary tbody');
  sbody.replaceChildren(...Object.entries(pools._summary || {}).map(([t, s]) => el('tr', {}, el('td', {}, t), el('td', {}, s.totalCount),
    el('td', {}, s.healthyCount), el('td', {}, s.usableCount))));
}

function accountRow(type, a) {
  const path = `/api/providers/${encodeURIComponent(type)}/${encodeURIComponent(a.uuid)}`;
  const act = (label, suffix, method = 'POST') => el('button', { 'data-action': suffix || method.toLowerCase(), onclick: async () => {
    try { await api(method, path + (suffix ? `/${suffix}` : '')); say('pools-message', `${label}: ${a.customName || a.uuid}`); loadPools(); }
    catch (e) { say('pools-message', e.message, true); }
  } }, label);
  const health = a.isDisabled ? el('span', { class: 'muted' }, 'disabled') : el('span', { class: a.isHealthy ? 'good' : 'bad' }, a.isHealthy ? 'healthy' : 'unhealthy');
  const actions = el('td', {}, a.isDisabled ? act('Enable', 'enable') : act('Disable', 'disable'), act('Reset', 'reset-health'), act('Check', 'health-check'));
  if (!a.managedBy) actions.append(el('button', { 'data-action': 'edit', onclick: () => editAccount(type, a) }, 'Edit'), act('Delete', '', 'DELETE'));
  return el('tr', { 'data-uuid': a.uuid }, el('td', { class: 'name' }, a.customName || ''), el('td', {}, a.uuid), el('td', { class: 'health' }, health),
    el('td', {}, a.usageCount ?? 0), el('td', {}, a.errorCount ?? 0),
    el('td', {}, `${a.activeRequests ?? 0}${a.queuedRequests ? ` (+${a.queuedRequests} queued)` : ''}`), el('td', {}, a.lastErrorMessage || ''),
    el('td', {}, a.managedBy || ''), actions);
}

async function loadPools() {
  const pools = await api('GET', '/api/providers');
  const box = document.getElementById('pool-tables');
  box.replaceChildren();
  for (const [type, accounts] of Object.entries(pools)) {
    if (type === '_summary') continue;
    const head = el('tr', {}, ...['Name', 'UUID', 'Health', 'Usage', 'Errors', 'In flight', 'Last error', 'Managed by', 'Actions'].map(h => el('th', {}, h)));
    box.append(el('h3', {}, type), el('table', { 'data-pool': type }, el('thead', {}, head), el('tbody', {}, ...accounts.map(a => accountRow(type, a)))));
  }
}

// Fields the server adds for display; never sent back.
const VIEW_ONLY = ['uuid', 'activeRequests', 'isUsable', 'managedBy', 'slotsHeld', 'queuedRequests', 'isHealthy', 'isDisabled',
  'usageCount', 'errorCount', 'lastUsed', 'lastErrorTime', 'lastErrorMessage', 'lastHealthCheckTime', 'lastHealthCheckModel',
  'refreshCount', 'needsRefresh', 'scheduledRecoveryTime', 'addedAt'];
let editing = null;

function editAccount(type, a) {
  editing = { type, uuid: a.uuid };
  const fields = Object.fromEntries(Object.entries(a).filter(([k]) => !VIEW_ONLY.includes(k)));
  document.getElementById('add-type').value = type;
  document.getElementById('add-type').disabled = true;
  document.getElementById('add-fields').value = JSON.stringify(fields, null, 2);
  document.getElementById('account-form-title').textContent = `Edit ${a.customName || a.uuid}`;
  document.getElementById('add-submit').textContent = 'Save';
  document.getElementById('add-cancel').hidden = false;
}

function stopEditing() {
  editing = null;
  document.getElementById('add-type').disabled = false;
  document.getElementById('add-fields').value = '{}';
  document.getElementById('account-form-title').textContent = 'Add an account';
  document.getElementById('add-submit').textContent = 'Add';
  document.getElementById('add-cancel').hidden = true;
}

async function loadUsage(refresh) {
  const data = await api('GET', refresh ? '/api/usage?refresh=true' : '/api/usage');
  document.getElementById('usage-stamp').textContent = `As of ${data.timestamp || 'never'}${data.fromCache ? ' (cached)' : ''}`;
  const box = document.getElementById('usage-tables');
  box.replaceChildren();
  for (const [type, p] of Object.entries(data.providers || {})) {
    const head = el('tr', {}, ...['Account', 'Health', 'Plan', 'Used', 'Limit', 'Resets', 'Error'].map(h => el('th', {}, h)));
    const rows = (p.instances || []).map(i => {
      const u = i.usage || {};
      const b = (u.usageBreakdown || [])[0] || {};
      return el('tr', {}, el('td', {}, i.name || i.uuid), el('td', {}, i.isHealthy ? 'healthy' : 'unhealthy'),
        el('td', {}, u.subscription?.title || ''), el('td', {}, b.currentUsage ?? ''), el('td', {}, b.usageLimit ?? ''),
        el('td', {}, u.nextDateReset || ''), el('td', {}, i.error || ''));
    });
    box.append(el('h3', {}, type), el('table', { 'data-usage': type }, el('thead', {}, head), el('tbody', {}, ...rows)));
  }
}

const FORM_FIELDS = [['MODEL_PROVIDER', 'text'], ['MAX_ERROR_COUNT', 'number'], ['REQUEST_MAX_RETRIES', 'number'],
  ['CREDENTIAL_SWITCH_MAX_RETRIES', 'number'], ['RATE_LIMIT_COOLDOWN_MS', 'number'], ['UPSTREAM_TIMEOUT_MS', 'number'],
  ['LOGIN_EXPIRY', 'number'], ['LOGIN_MAX_ATTEMPTS', 'number']];

async function loadConfig() {
  const cfg = await api('GET', '/api/config');
  document.getElementById('config-raw').value = JSON.stringify(cfg, null, 2);
  const form = document.getElementById('config-form');
  form.replaceChildren(...FORM_FIELDS.map(([name, type]) => {
    const v = cfg[name];
    const input = el('input', { name, type, value: Array.isArray(v) ? v.join(',') : (v ?? '') });
    return el('label', {}, name, input);
  }), el('button', { type: 'submit', id: 'config-save' }, 'Save'));
}

async function saveConfig(patch) {
  try { await api('POST', '/api/config', patch); say('config-message', 'Saved and applied on every replica'); loadConfig(); }
  catch (e) { say('config-message', e.message, true); }
}

async function loadPlugins() {
  const { plugins } = await api('GET', '/api/plugins');
  document.querySelector('#plugin-table tbody').replaceChildren(...plugins.map(p => {
    const box = el('input', { type: 'checkbox' });
    box.checked = p.enabled;
    box.addEventListener('change', () => api('POST', `/api/plugins/${encodeURIComponent(p.name)}/toggle`, { enabled: box.checked }).catch(report));
    return el('tr', {}, el('td', {}, p.name), el('td', {}, p.description || ''), el('td', {}, box));
  }));
}

// A burst of changes (traffic updates accounts) re-renders the pools once, not once per event.
function reloadPoolsSoon() {
  if (state.poolsReload) return;
  state.poolsReload = setTimeout(() => { state.poolsReload = null; loadPools().catch(report); }, 300);
}

function openEvents() {
  if (state.events) state.events.close();
  const src = new EventSource(`/api/events?token=${encodeURIComponent(state.token)}`);
  const log = document.getElementById('event-log');
  for (const name of ['ready', 'config_update', 'provider_update', 'health_status_change', 'token_update', 'plugin_update', 'resync']) {
    src.addEventListener(name, ev => {
      log.prepend(el('li', {}, `${new Date().toLocaleTimeString()} ${name} ${ev.data}`));
      while (log.children.length > 200) log.lastChild.remove();
      const visible = document.querySelector('.view:not([hidden])')?.id;
      if (name !== 'ready' && visible === 'pools' && name !== 'token_update') reloadPoolsSoon();
    });
  }
  state.events = src;
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('login-form').addEventListener('submit', async ev => {
    ev.preventDefault();
    const password = document.getElementById('password').value;
    try {
      const resp = await fetch('/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ password }) });
      const data = await resp.json().catch(() => ({}));
      if (!resp.ok) throw new Error(data?.error?.message || `HTTP ${resp.status}`);
      document.getElementById('password').value = '';
      say('login-error', '');
      loggedIn(data.token);
    } catch (e) { say('login-error', e.message, true); }
  });
  for (const b of document.querySelectorAll('#nav button[data-view]')) b.addEventListener('click', () => show(b.dataset.view));
  document.getElementById('logout').addEventListener('click', async () => { await api('POST', '/api/logout').catch(report); loggedOut(); });
  document.getElementById('config-form').addEventListener('submit', ev => {
    ev.preventDefault();
    const patch = {};
    for (const input of ev.target.querySelectorAll('input')) {
      if (input.value === '') continue;
      patch[input.name] = input.type === 'number' ? Number(input.value) : input.value;
    }
    saveConfig(patch);
  });
  document.getElementById('config-raw-save').addEventListener('click', () => {
    try { saveConfig(JSON.parse(document.getElementById('config-raw').value)); }
    catch (e) { say('config-message', `Not valid JSON: ${e.message}`, true); }
  });
  document.getElementById('add-form').addEventListener('submit', async ev => {
    ev.preventDefault();
    try {
      const fields = JSON.parse(document.getElementById('add-fields').value || '{}');
      if (editing) {
        await api('PUT', `/api/providers/${encodeURIComponent(editing.type)}/${encodeURIComponent(editing.uuid)}`, fields);
        say('pools-message', 'Account saved');
        stopEditing();
      } else {
        await api('POST', '/api/providers', { providerType: document.getElementById('add-type').value.trim(), providerConfig: fields });
        say('pools-message', 'Account added');
      }
      loadPools();
    } catch (e) { say('pools-message', e.message, true); }
  });
  document.getElementById('add-cancel').addEventListener('click', stopEditing);
  document.getElementById('usage-refresh').addEventListener('click', () => loadUsage(true).catch(e => say('usage-stamp', e.message, true)));
  document.getElementById('import-button').addEventListener('click', async () => {
    const kind = document.getElementById('import-kind').value;
    const text = document.getElementById('import-text').value;
    try {
      const body = kind === 'kiro' ? { refreshTokens: text } : { credentials: JSON.parse(text) };
      const r = await api('POST', `/api/${kind}/batch-import-tokens`, body);
      say('import-message', `Imported ${r.imported}, duplicates ${r.duplicates}, failed ${r.failed}`, r.failed > 0);
      document.getElementById('import-text').value = '';
    } catch (e) { say('import-message', e.message, true); }
  });
  if (state.token) {
    api('GET', '/api/system').then(() => loggedIn(state.token)).catch(() => loggedOut());
  } else {
    loggedOut();
  }
});
