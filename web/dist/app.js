// Ferry web app: sign-in, a home page per role, the administration pages, and video consults
// (request, inbox, the consult with its signed opinion, the call beside the image viewer).
// Plain ES module, no build step. Every value from the server is put into the page as text
// (never as HTML). The server decides every request; the page only hides what would be refused.

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let me = null; // { user, site, csrf_token, capabilities }

// ---- helpers ----

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code;
  }
}

async function api(method, path, body) {
  const headers = { 'Accept': 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && me && me.csrf_token) headers['X-CSRF-Token'] = me.csrf_token;
  const resp = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    if (resp.status === 401 && path !== '/api/auth/login') { me = null; location.hash = '#/login'; }
    throw new ApiError(resp.status, data);
  }
  return data;
}

function errorBox(e) {
  return h('div', { class: 'error', role: 'alert' }, e.message || String(e));
}

// Pages load asynchronously; only the most recently started one may draw, so a quick second
// click is never overwritten by a slower first one.
let renderSeq = 0;
function startPage() {
  const mine = ++renderSeq;
  return (...nodes) => { if (mine === renderSeq) show(...nodes); };
}

// A message for the next page shown (e.g. a new token's secret after the list reloads).
let flash = null;

function show(...nodes) {
  main.replaceChildren(...nodes.flat().filter(n => n !== null && n !== undefined));
  if (flash) { main.prepend(flash); flash = null; }
}

function can(cap) {
  return !!(me && me.capabilities.includes(cap));
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function field(label, input) {
  return h('div', {}, h('label', {}, label, input));
}

function table(headers, rows) {
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map(x => h('th', {}, x)))),
    h('tbody', {}, rows.length ? rows : [h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, 'Nothing here yet.'))]));
}

function siteSelect(sites, selected, name = 'site') {
  return h('select', { name },
    sites.map(s => h('option', { value: s.id, selected: s.id === selected }, `${s.name} (${s.id})`)));
}

// ---- navigation ----

function renderNav() {
  nav.replaceChildren();
  if (!me) return;
  nav.append(...[
    h('a', { href: '#/' }, 'Home'),
    h('a', { href: '#/studies' }, 'Studies'),
    can('consult.request') || can('consult.answer') ? h('a', { href: '#/consults', id: 'nav-consults' }, 'Consults') : null,
    can('admin.users') ? h('a', { href: '#/admin/sites' }, 'Administration') : null,
    h('span', { class: 'muted', id: 'whoami' }, `${me.user.display_name} · ${me.site.name}`),
    h('button', { id: 'logout', onclick: logout }, 'Sign out'),
  ].filter(Boolean));
}

async function logout() {
  try { await api('POST', '/api/auth/logout'); } catch (_) { /* ended anyway */ }
  me = null;
  closeSocket();
  location.hash = '#/login';
}

async function loadMe() {
  try { me = await api('GET', '/api/me'); } catch (_) { me = null; }
  renderNav();
}

// ---- pages ----

function loginPage() {
  const show = startPage();
  const err = h('div');
  const form = h('form', { class: 'box login', id: 'login-form' },
    h('h1', {}, 'Sign in to Ferry'),
    field('User name', h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true })),
    field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    err,
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, 'Sign in')));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    err.replaceChildren();
    const v = formValues(form);
    try {
      await api('POST', '/api/auth/login', { username: v.username, password: v.password });
      await loadMe();
      location.hash = '#/';
    } catch (e) { err.append(errorBox(e)); }
  });
  show(form);
}

// What each capability means on the home page; `soon` names the part of Ferry that brings it.
const CARDS = {
  'imaging.send': ['Imaging studies', 'Your site\'s studies (sent by its modalities over DICOM or STOW-RS); open them in the viewer.', null, '#/studies'],
  'ecg.send': ['Send an ECG', 'Send a 12-lead ECG for reading by a cardiologist.', 'ECG'],
  'consult.request': ['Request a video consult', 'Ask a specialist to see a patient with you, with the studies at hand.', null, '#/consults/new'],
  'imaging.read': ['Imaging studies', 'Studies of your site and those shared with it, in the viewer.', null, '#/studies'],
  'consult.answer': ['Consult inbox', 'Consult requests for your specialty; accept and join the call.', null, '#/consults'],
  'ecg.read': ['ECG worklist', 'ECGs waiting for reading, with the 12-lead viewer.', 'ECG'],
  'reading.worklist': ['Reports and turnaround', 'Your reports, signatures and critical-result alerts.', 'reading centres'],
  'training.broadcast': ['Broadcast a training session', 'Present to many member sites at once, take questions.', 'training broadcasts'],
  'training.watch': ['Training sessions', 'Join broadcasts from the lead hospital.', 'training broadcasts'],
  'admin.sites': ['Sites', 'The sites of the network and how they are linked.', null, '#/admin/sites'],
  'admin.users': ['People', 'Accounts, roles and specialties of your sites.', null, '#/admin/users'],
  'admin.devices': ['Devices and tokens', 'Modalities, ECG carts, upload clients and API tokens.', null, '#/admin/devices'],
  'admin.audit': ['Audit trail', 'Who accessed what, when and from where; export as CSV.', null, '#/admin/audit'],
  'tokens.own': ['My API tokens', 'Tokens for scripts and the upload tool acting as you.', null, '#/tokens'],
};

const ROLE_TITLES = {
  admin: 'Site administration', specialist: 'Specialist', reader: 'Reading centre',
  clinician: 'Clinic', trainer: 'Training',
};

function homePage() {
  const show = startPage();
  const roles = me.user.roles;
  const title = roles.map(r => ROLE_TITLES[r] || r).join(' · ');
  const cards = me.capabilities.filter(c => CARDS[c]).map(c => {
    const [name, text, soon, href] = CARDS[c];
    return h('div', { class: 'card', 'data-cap': c },
      h('h3', {}, href ? h('a', { href }, name) : name),
      h('div', {}, text),
      soon ? h('div', { class: 'soon' }, `Arrives with ${soon}.`) : null);
  });
  show(
    h('h1', { id: 'home-title', 'data-roles': roles.join(' ') }, `${title} — ${me.site.name}`),
    h('p', { class: 'muted' }, `Signed in as ${me.user.display_name} (${me.user.id}), ${me.site.tier} ${me.site.kind}.`),
    h('div', { class: 'cards' }, cards));
}

function adminTabs(on) {
  const tab = (id, label) => h('a', { href: `#/admin/${id}`, class: on === id ? 'on' : '' }, label);
  return h('div', { class: 'tabs' },
    tab('sites', 'Sites'), tab('users', 'People'), tab('devices', 'Devices and tokens'), tab('audit', 'Audit trail'));
}

function notPermitted() {
  const show = startPage();
  show(h('h1', {}, 'Administration'),
    h('div', { class: 'error', id: 'not-permitted', role: 'alert' },
      'You do not have access to administration. Ask your site administrator if you need it.'));
}

async function sitesPage() {
  const show = startPage();
  const err = h('div');
  let sites = [];
  try { sites = (await api('GET', '/api/sites')).sites; } catch (e) { err.append(errorBox(e)); }
  const form = h('form', { class: 'box' },
    h('h2', {}, 'Add a site'),
    h('div', { class: 'row' },
      field('Id', h('input', { name: 'id', required: true, placeholder: 'harbour-clinic' })),
      field('Name', h('input', { name: 'name', required: true })),
      field('Tier', h('select', { name: 'tier' }, ['city', 'county', 'township', 'village'].map(t => h('option', {}, t)))),
      field('Kind', h('select', { name: 'kind' }, ['hospital', 'clinic', 'reading-centre'].map(t => h('option', {}, t)))),
      field('Parent', siteSelect(sites, me.site.id, 'parent'))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, 'Add site')));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    try { await api('POST', '/api/sites', v); sitesPage(); } catch (e) { err.replaceChildren(errorBox(e)); }
  });
  const byId = Object.fromEntries(sites.map(s => [s.id, s]));
  show(h('h1', {}, 'Administration'), adminTabs('sites'), err,
    table(['Site', 'Id', 'Tier', 'Kind', 'Parent'], sites.map(s => h('tr', {},
      h('td', {}, s.name), h('td', {}, h('code', {}, s.id)), h('td', {}, s.tier), h('td', {}, s.kind),
      h('td', {}, s.parent ? (byId[s.parent]?.name || s.parent) : '—')))),
    form);
}

async function sitePicker(onPick, current) {
  const sites = (await api('GET', '/api/sites')).sites;
  const sel = siteSelect(sites, current);
  sel.addEventListener('change', () => onPick(sel.value));
  return field('Site', sel);
}

async function usersPage(site = me.site.id) {
  const show = startPage();
  const err = h('div');
  let users = [];
  try { users = (await api('GET', `/api/sites/${encodeURIComponent(site)}/users`)).users; } catch (e) { err.append(errorBox(e)); }
  const form = h('form', { class: 'box' },
    h('h2', {}, 'Add a person'),
    h('div', { class: 'row' },
      field('Login name', h('input', { name: 'id', required: true })),
      field('Display name', h('input', { name: 'display_name', required: true })),
      field('Role', h('select', { name: 'role' }, ['clinician', 'specialist', 'reader', 'trainer', 'admin'].map(r => h('option', {}, r)))),
      field('Specialties (comma separated)', h('input', { name: 'specialties' })),
      field('Initial password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password' }))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, 'Add person')));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    const body = {
      id: v.id, display_name: v.display_name, roles: [v.role],
      specialties: v.specialties.split(',').map(s => s.trim()).filter(Boolean),
    };
    if (v.password) body.password = v.password;
    try { await api('POST', `/api/sites/${encodeURIComponent(site)}/users`, body); usersPage(site); }
    catch (e) { err.replaceChildren(errorBox(e)); }
  });
  const toggle = u => h('button', {
    class: 'small', onclick: async () => {
      try { await api('PATCH', `/api/users/${encodeURIComponent(u.id)}`, { disabled: !u.disabled }); usersPage(site); }
      catch (e) { err.replaceChildren(errorBox(e)); }
    },
  }, u.disabled ? 'Enable' : 'Disable');
  show(h('h1', {}, 'Administration'), adminTabs('users'),
    h('div', { class: 'row box' }, await sitePicker(usersPage, site)), err,
    table(['Login', 'Name', 'Roles', 'Specialties', 'Status', ''], users.map(u => h('tr', {},
      h('td', {}, h('code', {}, u.id)), h('td', {}, u.display_name), h('td', {}, u.roles.join(', ')),
      h('td', {}, u.specialties.join(', ')), h('td', {}, u.disabled ? 'disabled' : 'active'),
      h('td', {}, u.id === me.user.id ? '' : toggle(u))))),
    form);
}

function tokenTable(tokens, err, refresh) {
  return table(['Id', 'Label', 'Created', 'Expires', 'Last used', 'Status', ''], tokens.map(t => h('tr', {},
    h('td', {}, h('code', {}, t.id)), h('td', {}, t.label), h('td', {}, t.created_at),
    h('td', {}, t.expires_at || 'never'), h('td', {}, t.last_used_at || '—'),
    h('td', {}, t.revoked_at ? `revoked ${t.revoked_at}` : 'active'),
    h('td', {}, t.revoked_at ? '' : h('button', {
      class: 'small', onclick: async () => {
        try { await api('DELETE', `/api/tokens/${encodeURIComponent(t.id)}`); refresh(); }
        catch (e) { err.replaceChildren(errorBox(e)); }
      },
    }, 'Revoke')))));
}

function tokenForm(user, err, refresh) {
  const out = h('div');
  const form = h('form', { class: 'box' },
    h('h2', {}, `New token for ${user}`),
    h('div', { class: 'row' },
      field('Label', h('input', { name: 'label', required: true, placeholder: 'upload script on the CT workstation' })),
      field('Expires in days (empty: never)', h('input', { name: 'days', type: 'number', min: 1 }))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, 'Create token')), out);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    const body = { label: v.label };
    if (v.days) body.expires_in_days = Number(v.days);
    try {
      const r = await api('POST', `/api/users/${encodeURIComponent(user)}/tokens`, body);
      flash = h('div', { class: 'notice', id: 'new-token' },
        'Copy this token now; it will not be shown again: ', h('code', {}, r.secret));
      await refresh();
    } catch (e) { err.replaceChildren(errorBox(e)); }
  });
  return form;
}

async function devicesPage(site = me.site.id, tokenUser = null) {
  const show = startPage();
  const err = h('div');
  let devices = [], users = [];
  try {
    devices = (await api('GET', `/api/sites/${encodeURIComponent(site)}/devices`)).devices;
    users = (await api('GET', `/api/sites/${encodeURIComponent(site)}/users`)).users;
  } catch (e) { err.append(errorBox(e)); }
  const form = h('form', { class: 'box' },
    h('h2', {}, 'Register a device'),
    h('div', { class: 'row' },
      field('Kind', h('select', { name: 'kind' }, ['modality', 'ecg-cart', 'uploader'].map(k => h('option', {}, k)))),
      field('Name', h('input', { name: 'name', required: true })),
      field('DICOM AE title (modalities)', h('input', { name: 'ae_title', maxlength: 16 }))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, 'Register')));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const v = formValues(form);
    const body = { kind: v.kind, name: v.name };
    if (v.ae_title) body.ae_title = v.ae_title;
    try { await api('POST', `/api/sites/${encodeURIComponent(site)}/devices`, body); devicesPage(site, tokenUser); }
    catch (e) { err.replaceChildren(errorBox(e)); }
  });
  const tokenUserSel = h('select', { name: 'user' }, h('option', { value: '' }, '— choose a person —'),
    users.map(u => h('option', { value: u.id, selected: u.id === tokenUser }, `${u.display_name} (${u.id})`)));
  tokenUserSel.addEventListener('change', () => devicesPage(site, tokenUserSel.value || null));
  const tokenPart = [h('h2', {}, 'API tokens'), h('div', { class: 'row box' }, field('Person', tokenUserSel))];
  if (tokenUser) {
    const refresh = () => devicesPage(site, tokenUser);
    try {
      const tokens = (await api('GET', `/api/users/${encodeURIComponent(tokenUser)}/tokens`)).tokens;
      tokenPart.push(tokenTable(tokens, err, refresh), tokenForm(tokenUser, err, refresh));
    } catch (e) { err.append(errorBox(e)); }
  }
  show(h('h1', {}, 'Administration'), adminTabs('devices'),
    h('div', { class: 'row box' }, await sitePicker(s => devicesPage(s), site)), err,
    table(['Name', 'Kind', 'AE title', 'Id', ''], devices.map(d => h('tr', {},
      h('td', {}, d.name), h('td', {}, d.kind), h('td', {}, d.ae_title || '—'), h('td', {}, h('code', {}, d.id)),
      h('td', {}, h('button', {
        class: 'small', onclick: async () => {
          try { await api('DELETE', `/api/devices/${encodeURIComponent(d.id)}`); devicesPage(site, tokenUser); }
          catch (e) { err.replaceChildren(errorBox(e)); }
        },
      }, 'Remove'))))),
    form, ...tokenPart);
}

async function myTokensPage() {
  const show = startPage();
  const err = h('div');
  const refresh = () => myTokensPage();
  let tokens = [];
  try { tokens = (await api('GET', `/api/users/${encodeURIComponent(me.user.id)}/tokens`)).tokens; }
  catch (e) { err.append(errorBox(e)); }
  show(h('h1', {}, 'My API tokens'), err, tokenTable(tokens, err, refresh), tokenForm(me.user.id, err, refresh));
}

async function auditPage(params = new URLSearchParams()) {
  const show = startPage();
  const err = h('div');
  let events = [], next = null;
  const clean = new URLSearchParams([...params].filter(([, v]) => v));
  try {
    const r = await api('GET', `/api/audit?${clean}`);
    events = r.events; next = r.next_before;
  } catch (e) { err.append(errorBox(e)); }
  const val = k => params.get(k) || '';
  const form = h('form', { class: 'box', id: 'audit-filters' },
    h('div', { class: 'row' },
      field('User', h('input', { name: 'user', value: val('user') })),
      field('Site', h('input', { name: 'site', value: val('site') })),
      field('Resource (kind or kind:id)', h('input', { name: 'resource', value: val('resource') })),
      field('Action', h('input', { name: 'action', value: val('action'), placeholder: 'login, user.list, …' })),
      field('Outcome', h('select', { name: 'outcome' }, ['', 'allowed', 'denied', 'success', 'failure'].map(o =>
        h('option', { value: o, selected: o === val('outcome') }, o || 'any')))),
      field('From', h('input', { name: 'from', type: 'date', value: val('from') })),
      field('To (exclusive)', h('input', { name: 'to', type: 'date', value: val('to') }))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, 'Filter'), ' ',
      h('a', { class: 'button', id: 'audit-csv', href: `/api/audit.csv?${clean}`, download: 'ferry-audit.csv' }, 'Export CSV')));
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    auditPage(new URLSearchParams(formValues(form)));
  });
  const older = next ? h('p', {}, h('button', {
    class: 'small', onclick: () => { const p = new URLSearchParams(params); p.set('before', next); auditPage(p); },
  }, 'Older events')) : null;
  show(h('h1', {}, 'Administration'), adminTabs('audit'), form, err,
    table(['Time', 'Actor', 'Actor site', 'Action', 'Resource', 'Site', 'Outcome', 'From', 'Detail'], events.map(e => h('tr', {},
      h('td', {}, e.at), h('td', {}, e.actor || '—'), h('td', {}, e.actor_site || '—'), h('td', {}, e.action),
      h('td', {}, e.resource_id ? `${e.resource_kind}:${e.resource_id}` : e.resource_kind), h('td', {}, e.site || '—'),
      h('td', { class: `outcome-${e.outcome}` }, e.outcome), h('td', {}, e.client_addr || '—'), h('td', {}, e.detail || '')))),
    older);
}

// ---- studies ----

const DJ = (item, tag) => {
  const v = item[tag] && item[tag].Value;
  if (!v || !v.length) return '';
  const first = v[0];
  return typeof first === 'object' && first !== null ? (first.Alphabetic || '') : String(first);
};

function dicomDate(d) {
  return d && d.length === 8 ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : (d || '');
}

async function studiesPage(params = new URLSearchParams()) {
  const show = startPage();
  const err = h('div');
  let studies = [];
  const query = new URLSearchParams();
  const name = params.get('name'), id = params.get('id'), modality = params.get('modality');
  if (name) query.set('PatientName', `*${name}*`);
  if (id) query.set('PatientID', `*${id}*`);
  if (modality) query.set('ModalitiesInStudy', modality);
  const from = (params.get('from') || '').replaceAll('-', ''), to = (params.get('to') || '').replaceAll('-', '');
  if (from || to) query.set('StudyDate', `${from}-${to}`);
  query.set('limit', '200');
  try {
    const resp = await fetch(`/dicomweb/studies?${query}`, { headers: { Accept: 'application/dicom+json' } });
    if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => ({})));
    studies = await resp.json();
  } catch (e) { err.append(errorBox(e)); }
  const val = k => params.get(k) || '';
  const form = h('form', { class: 'box', id: 'study-search' },
    h('div', { class: 'row' },
      field('Patient name', h('input', { name: 'name', value: val('name') })),
      field('Patient ID', h('input', { name: 'id', value: val('id') })),
      field('Modality', h('select', { name: 'modality' }, ['', 'CT', 'MR', 'US', 'CR', 'DX', 'MG', 'XA', 'ECG'].map(m =>
        h('option', { value: m, selected: m === val('modality') }, m || 'any')))),
      field('From', h('input', { name: 'from', type: 'date', value: val('from') })),
      field('To', h('input', { name: 'to', type: 'date', value: val('to') }))),
    h('p', {}, h('button', { class: 'primary', type: 'submit' }, 'Search')));
  form.addEventListener('submit', ev => { ev.preventDefault(); studiesPage(new URLSearchParams(formValues(form))); });
  show(h('h1', {}, 'Imaging studies'),
    h('p', { class: 'muted' }, `Studies of ${me.site.name} and those shared with it. `,
      h('a', { class: 'button', href: '#/upload', id: 'upload-link' }, 'Send imaging')), form, err,
    table(['Patient', 'Patient ID', 'Date', 'Modalities', 'Description', 'Series / images', ''], studies.map(st => {
      const uid = DJ(st, '0020000D');
      return h('tr', { 'data-study': uid },
        h('td', {}, DJ(st, '00100010')), h('td', {}, DJ(st, '00100020')), h('td', {}, dicomDate(DJ(st, '00080020'))),
        h('td', {}, ((st['00080061'] && st['00080061'].Value) || []).join(', ')), h('td', {}, DJ(st, '00081030')),
        h('td', {}, `${DJ(st, '00201206')} / ${DJ(st, '00201208')}`),
        h('td', {}, h('a', { class: 'button open-viewer', href: `/viewer/viewer?StudyInstanceUIDs=${encodeURIComponent(uid)}` }, 'Open in viewer')));
    })));
}

// ---- upload (tus 1.0, resumable) ----

const sleep = ms => new Promise(r => setTimeout(r, ms));
const CHUNK = 1 << 20;

function tusHeaders(extra = {}) {
  return { 'Tus-Resumable': '1.0.0', 'X-CSRF-Token': me.csrf_token, ...extra };
}

async function uploadOffset(loc) {
  const r = await fetch(loc, { method: 'HEAD', headers: tusHeaders() });
  return r.ok ? Number(r.headers.get('Upload-Offset')) : null;
}

// Sends one file, resuming where the server stopped: across dropped connections (retries)
// and across page reloads (the upload's address is kept in localStorage).
async function tusUpload(file, onProgress) {
  const key = `ferry-upload:${file.name}:${file.size}:${file.lastModified}`;
  let loc = localStorage.getItem(key);
  let offset = loc ? await uploadOffset(loc) : null;
  if (offset === null) {
    const r = await fetch('/api/uploads', {
      method: 'POST',
      headers: tusHeaders({ 'Upload-Length': String(file.size), 'Upload-Metadata': 'filename ' + btoa(unescape(encodeURIComponent(file.name))) }),
    });
    if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => ({})));
    loc = r.headers.get('Location');
    localStorage.setItem(key, loc);
    offset = 0;
  }
  onProgress(offset);
  let failures = 0;
  while (offset < file.size) {
    let r;
    try {
      r = await fetch(loc, {
        method: 'PATCH',
        headers: tusHeaders({ 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' }),
        body: file.slice(offset, offset + CHUNK),
      });
    } catch (e) {
      // The connection dropped: wait, ask the server how far it got, go on from there.
      failures++;
      if (failures > 30) throw new Error(`connection lost while sending ${file.name}; try again to resume`);
      await sleep(Math.min(500 * failures, 5000));
      const held = await uploadOffset(loc).catch(() => null);
      if (held !== null) { offset = held; onProgress(offset); }
      continue;
    }
    if (r.status === 204) {
      offset = Number(r.headers.get('Upload-Offset'));
      failures = 0;
      onProgress(offset);
    } else if (r.status === 409) {
      const held = await uploadOffset(loc);
      if (held === null) throw new Error(`the server lost the upload of ${file.name}`);
      offset = held;
    } else {
      throw new ApiError(r.status, await r.json().catch(() => ({})));
    }
  }
  localStorage.removeItem(key);
  const st = await (await fetch(loc, { headers: { Accept: 'application/json' } })).json();
  return st.result || { stored: [], failed: [] };
}

function uploadPage() {
  const show = startPage();
  const rows = h('tbody');
  const total = h('progress', { id: 'upload-total', max: 1, value: 0 });
  const totalText = h('span', { class: 'muted', id: 'upload-total-text' });
  const pick = h('input', { type: 'file', id: 'upload-files', multiple: true });
  const pickDir = h('input', { type: 'file', id: 'upload-folder', webkitdirectory: true });
  const drop = h('div', { class: 'box drop', id: 'upload-drop' }, 'Drop DICOM files or a folder here, or choose: ',
    h('label', {}, 'Files ', pick), h('label', {}, 'A folder ', pickDir));
  async function start(files) {
    files = [...files].filter(f => f.size > 0);
    const size = files.reduce((a, f) => a + f.size, 0) || 1;
    const done = new Array(files.length).fill(0);
    const update = () => {
      const sum = done.reduce((a, b) => a + b, 0);
      total.value = sum / size;
      totalText.textContent = ` ${(sum / 1e6).toFixed(1)} of ${(size / 1e6).toFixed(1)} MB`;
    };
    const cells = files.map(f => {
      const bar = h('progress', { max: f.size || 1, value: 0 });
      const state = h('td', { class: 'upload-state' }, 'waiting');
      rows.append(h('tr', { 'data-file': f.name }, h('td', {}, f.webkitRelativePath || f.name), h('td', {}, bar), state));
      return { bar, state };
    });
    for (const [i, f] of files.entries()) {
      const { bar, state } = cells[i];
      state.textContent = 'sending';
      try {
        const result = await tusUpload(f, n => { bar.value = n; done[i] = n; update(); });
        const stored = (result.stored || []).length;
        const failed = result.failed || [];
        if (result.refused || (failed.length && !stored)) {
          state.textContent = `refused: ${result.refused || failed[0].reason}`;
          state.className = 'upload-state denied';
        } else if (failed.length) {
          // A bundle with some entries refused: say how many, and the first reason.
          state.textContent = `stored ${stored}, refused ${failed.length} (entry ${failed[0].entry}: ${failed[0].reason})`;
          state.className = 'upload-state denied';
        } else {
          state.textContent = stored > 1 ? `stored ${stored} instances` : 'stored';
        }
      } catch (e) {
        state.textContent = `failed: ${e.message}`;
        state.className = 'upload-state denied';
      }
    }
  }
  pick.addEventListener('change', () => start(pick.files));
  pickDir.addEventListener('change', () => start(pickDir.files));
  drop.addEventListener('dragover', ev => ev.preventDefault());
  drop.addEventListener('drop', ev => { ev.preventDefault(); start(ev.dataTransfer.files); });
  show(h('h1', {}, 'Send imaging'),
    h('p', { class: 'muted' }, `Studies you send belong to ${me.site.name}. An interrupted upload resumes where it stopped.`),
    drop, h('p', {}, 'Total: ', total, totalText),
    h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'File'), h('th', {}, 'Progress'), h('th', {}, 'Result'))), rows),
    h('p', {}, h('a', { href: '#/studies' }, 'See the studies')));
}

// ---- live socket (docs/signalling.md) ----

// One WebSocket for the whole app: the consult inbox's pushes, presence and the call's
// signalling. It reconnects by itself; pages register what must be re-sent on every open
// (a `watch`, a `join`), so a dropped connection picks up where it was.
const socket = { ws: null, opens: 0, retry: 0, timer: null, wanted: false, openedAt: 0 };
const socketListeners = new Map(); // type -> Set of functions
const socketNeeds = new Map(); // key -> message re-sent on every open
window.ferrySocket = { get ws() { return socket.ws; }, get opens() { return socket.opens; } };

// Who is online, from `presence` messages. The first one after a `watch` is the whole list.
const presence = new Map();
let presenceKnown = false, presenceSnapshot = false;

function connectSocket() {
  if (!me) return; // signed out meanwhile
  socket.wanted = true;
  if (socket.ws && socket.ws.readyState <= WebSocket.OPEN) return;
  clearTimeout(socket.timer);
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/ws`);
  socket.ws = ws;
  ws.onopen = () => {
    socket.opens++;
    socket.openedAt = Date.now();
    for (const msg of socketNeeds.values()) sendSocket(msg);
    emit('open', {});
  };
  ws.onmessage = ev => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (_) { return; }
    if (msg && typeof msg.type === 'string') emit(msg.type, msg);
  };
  ws.onclose = ev => {
    if (socket.ws !== ws) return;
    // A socket that lived a while starts the backoff over; one that keeps failing waits longer.
    if (socket.openedAt && Date.now() - socket.openedAt > 5000) socket.retry = 0;
    const neverOpened = !socket.openedAt;
    socket.openedAt = 0;
    emit('close', { code: ev.code, reason: ev.reason });
    if (!socket.wanted || !me) return;
    // Refused again and again: perhaps the session ended. Asking who we are finds out (a 401
    // leads to the sign-in page, which stops the socket).
    if (neverOpened && socket.retry >= 3) api('GET', '/api/me').catch(() => {});
    const delay = Math.min(500 * 2 ** socket.retry, 5000);
    socket.retry++;
    socket.timer = setTimeout(connectSocket, delay);
  };
}

function closeSocket() {
  socket.wanted = false;
  clearTimeout(socket.timer);
  socketNeeds.clear();
  if (socket.ws) socket.ws.close();
}

function socketOpen() {
  return !!(socket.ws && socket.ws.readyState === WebSocket.OPEN);
}

// Sends a client message (every one carries "v": 1); false when the socket is not open.
function sendSocket(msg) {
  if (!socketOpen()) return false;
  if (msg.type === 'watch' && msg.presence) presenceSnapshot = true;
  socket.ws.send(JSON.stringify({ v: 1, ...msg }));
  return true;
}

function emit(type, msg) {
  if (type === 'presence') {
    if (presenceSnapshot) { presence.clear(); presenceSnapshot = false; presenceKnown = true; }
    for (const u of msg.users || []) presence.set(u.user, !!u.online);
  }
  for (const fn of [...(socketListeners.get(type) || [])]) {
    try { fn(msg); } catch (e) { console.error(e); }
  }
}

// What the page shown needs undone when another one replaces it (listeners, needs, calls).
let pageCleanups = [];
function onPageLeave(fn) { pageCleanups.push(fn); }
function leavePage() {
  for (const fn of pageCleanups.splice(0).reverse()) {
    try { fn(); } catch (e) { console.error(e); }
  }
}

// Listens to a server message type for as long as the current page is shown.
function listen(type, fn) {
  if (!socketListeners.has(type)) socketListeners.set(type, new Set());
  socketListeners.get(type).add(fn);
  onPageLeave(() => socketListeners.get(type).delete(fn));
}

function setNeed(key, msg) { socketNeeds.set(key, msg); sendSocket(msg); }
function dropNeed(key) { socketNeeds.delete(key); }

// ---- consults (docs/consults.md) ----

const URGENCY = { routine: 'Routine', urgent: 'Urgent', emergency: 'Emergency' };
const STATES = {
  requested: 'requested', accepted: 'accepted', in_call: 'in call', completed: 'completed',
  declined: 'declined', cancelled: 'cancelled', expired: 'expired',
};

const consultPath = id => `/api/consults/${encodeURIComponent(id)}`;
const consultHash = id => `#/consults/${encodeURIComponent(id)}`;
const viewerUrl = uid => `/viewer/viewer?StudyInstanceUIDs=${encodeURIComponent(uid)}`;

function when(ms) {
  return ms ? new Date(ms).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' }) : '—';
}

// For tables: the day and the time, the year only when it is not this one.
function shortWhen(ms) {
  const d = new Date(ms);
  const year = d.getFullYear() === new Date().getFullYear() ? undefined : 'numeric';
  return d.toLocaleString([], { year, month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function urgencyBadge(u) {
  return h('span', { class: `urgency urgency-${u}` }, URGENCY[u] || u);
}

// QIDO-RS study search; an empty result may come as 204 without a body.
async function qidoStudies(query) {
  const resp = await fetch(`/dicomweb/studies?${query}`, { headers: { Accept: 'application/dicom+json' } });
  if (resp.status === 204) return [];
  if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => ({})));
  return resp.json();
}

function escalatedBanner(c) {
  return h('div', { class: 'alert-escalated', role: 'alert', 'data-consult': c.id },
    h('strong', {}, 'Unanswered emergency. '),
    `A ${c.specialty} consult from ${c.from_site} is now offered to every ${c.specialty} specialist. `,
    h('a', { href: consultHash(c.id) }, 'Open it'));
}

async function newConsultPage() {
  const show = startPage();
  const err = h('div');
  let specialists = [], studies = [];
  try { specialists = (await api('GET', '/api/specialists')).specialists; } catch (e) { err.append(errorBox(e)); }
  try { studies = await qidoStudies('limit=200'); } catch (e) { err.append(errorBox(e)); }
  const specialties = [...new Set(['radiology', ...specialists.flatMap(s => s.specialties)])].sort();
  const specialtySel = h('select', { name: 'specialty', required: true }, specialties.map(s => h('option', { value: s }, s)));
  const specialistSel = h('select', { name: 'specialist' });
  const fillSpecialists = () => {
    const of = specialists.filter(s => s.specialties.includes(specialtySel.value));
    specialistSel.replaceChildren(h('option', { value: '' }, 'Any specialist of the specialty'),
      of.map(s => h('option', { value: s.id }, `${s.display_name} · ${s.site} · ${s.online ? 'online' : 'offline'}`)));
  };
  specialtySel.addEventListener('change', fillSpecialists);
  fillSpecialists();
  const studyList = studies.length
    ? h('ul', { class: 'pick-studies' }, studies.map(st => {
      const uid = DJ(st, '0020000D');
      return h('li', {}, h('label', {},
        h('input', { type: 'checkbox', name: 'study', value: uid }),
        h('span', {}, h('strong', {}, DJ(st, '00081030') || 'Study without description'), ` · ${dicomDate(DJ(st, '00080020')) || 'no date'} · ${DJ(st, '00100010')} `,
          h('code', {}, uid))));
    }))
    : h('p', { class: 'muted' }, `${me.site.name} has no studies yet; the request can go without images.`);
  const submit = h('button', { class: 'primary big', type: 'submit' }, 'Send the request');
  const form = h('form', { class: 'box', id: 'consult-form' },
    h('div', { class: 'row' },
      field('Specialty', specialtySel),
      field('Specialist', specialistSel),
      field('Urgency', h('select', { name: 'urgency' }, Object.entries(URGENCY).map(([v, t]) => h('option', { value: v }, t)))),
      field('When (empty: now)', h('input', { name: 'scheduled_at', type: 'datetime-local' }))),
    field('Case summary', h('textarea', { name: 'summary', required: true, rows: 6, placeholder: 'Age, complaint, findings so far, the question for the specialist' })),
    h('h2', {}, 'Studies to share with the specialist'), studyList,
    err, h('p', {}, submit));
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    err.replaceChildren();
    const fd = new FormData(form);
    const body = {
      specialty: fd.get('specialty'), urgency: fd.get('urgency'),
      summary: String(fd.get('summary')).trim(), studies: fd.getAll('study'),
    };
    if (fd.get('specialist')) body.specialist = fd.get('specialist');
    // datetime-local is the person's local time; the server wants unix ms.
    if (fd.get('scheduled_at')) body.scheduled_at = new Date(fd.get('scheduled_at')).getTime();
    submit.disabled = true;
    try {
      const c = await api('POST', '/api/consults', body);
      location.hash = consultHash(c.id);
    } catch (e) {
      err.replaceChildren(errorBox(e));
      submit.disabled = false;
    }
  });
  show(h('h1', {}, 'Request a video consult'),
    h('p', { class: 'muted' }, 'The specialist sees the request at once if online; the studies you tick are shared with them.'),
    form);
}

function consultsPage() {
  const show = startPage();
  const err = h('div'), banners = h('div'), list = h('div'), taken = h('div');
  const people = h('ul', { id: 'presence', class: 'presence' });
  let consults = [], specialists = [], seq = 0;
  const declining = new Map(); // consult id -> reason typed so far, kept across live refreshes

  const act = async (btn, path, body, after) => {
    btn.disabled = true;
    err.replaceChildren();
    try { await api('POST', path, body); after(); }
    catch (e) { err.replaceChildren(errorBox(e)); btn.disabled = false; load(); }
  };
  const actions = c => {
    const out = [];
    if (c.can.includes('accept')) {
      out.push(h('button', {
        class: 'primary accept', type: 'button',
        onclick: ev => act(ev.currentTarget, `${consultPath(c.id)}/accept`, undefined, () => { location.hash = consultHash(c.id); }),
      }, 'Accept'));
    }
    if (c.can.includes('decline')) {
      if (!declining.has(c.id)) {
        out.push(h('button', { class: 'small decline', type: 'button', onclick: () => { declining.set(c.id, ''); draw(); } }, 'Decline'));
      } else {
        const reason = h('input', { class: 'decline-reason', placeholder: 'Reason for declining', 'aria-label': 'Reason for declining', value: declining.get(c.id) });
        reason.addEventListener('input', () => declining.set(c.id, reason.value));
        out.push(h('div', { class: 'decline-box' }, reason,
          h('button', {
            class: 'small decline-confirm', type: 'button', onclick: ev => {
              if (!reason.value.trim()) { err.replaceChildren(errorBox(new Error('Give a reason for declining.'))); return; }
              act(ev.currentTarget, `${consultPath(c.id)}/decline`, { reason: reason.value.trim() }, () => { declining.delete(c.id); load(); });
            },
          }, 'Decline'),
          h('button', { class: 'small', type: 'button', onclick: () => { declining.delete(c.id); draw(); } }, 'Keep')));
      }
    }
    return out;
  };
  const row = c => h('tr', {
    'data-consult': c.id, 'data-state': c.state,
    class: `consult-row level-${c.urgency}${c.escalated ? ' escalated' : ''}`,
    // The whole row opens the consult, except its own buttons and fields.
    onclick: ev => { if (!ev.target.closest('button, input, a')) location.hash = consultHash(c.id); },
  },
  h('td', {}, urgencyBadge(c.urgency), c.escalated ? h('div', { class: 'escalated-tag' }, 'escalated') : null),
  h('td', {}, h('a', { href: consultHash(c.id), class: 'open-consult' }, c.specialty),
    h('div', { class: 'muted clip' }, c.summary)),
  h('td', {}, c.from_site), h('td', {}, c.requested_by),
  h('td', {}, shortWhen(c.created_at), c.scheduled_at ? h('div', { class: 'muted' }, `for ${shortWhen(c.scheduled_at)}`) : null),
  h('td', { class: `state state-${c.state}` }, STATES[c.state] || c.state, c.accepted_by ? h('div', { class: 'muted' }, `by ${c.accepted_by}`) : null),
  h('td', { class: 'actions' }, actions(c)));

  function drawPresence() {
    // The specialists, and the clinicians whose requests are listed; not oneself.
    const who = new Map();
    for (const s of specialists) who.set(s.id, { label: `${s.display_name} · ${s.site}`, fallback: s.online });
    for (const c of consults) if (!who.has(c.requested_by)) who.set(c.requested_by, { label: `${c.requested_by} · ${c.from_site}`, fallback: false });
    who.delete(me.user.id);
    people.replaceChildren(...[...who].map(([id, p]) => {
      const on = presenceKnown ? !!presence.get(id) : !!p.fallback;
      return h('li', { 'data-user': id, 'data-online': String(on), class: on ? 'online' : 'offline' },
        h('span', { class: 'dot', 'aria-hidden': 'true' }), p.label, h('span', { class: 'muted' }, on ? ' online' : ' offline'));
    }));
    if (!who.size) people.append(h('li', { class: 'muted' }, 'Nobody yet.'));
  }
  function draw() {
    // A live refresh redraws the rows; a reason being typed keeps its place and the focus.
    const typing = document.activeElement && document.activeElement.classList.contains('decline-reason')
      ? document.activeElement.closest('tr').dataset.consult : null;
    const t = table(['Urgency', 'Specialty', 'From site', 'Requested by', 'Created', 'State', ''], consults.map(row));
    t.id = 'consult-list';
    list.replaceChildren(t);
    banners.replaceChildren(...consults.filter(c => c.escalated && c.state === 'requested').map(escalatedBanner));
    drawPresence();
    const again = typing && [...list.querySelectorAll('tr[data-consult]')].find(tr => tr.dataset.consult === typing);
    if (again && again.querySelector('.decline-reason')) again.querySelector('.decline-reason').focus();
  }
  async function load() {
    const mine = ++seq;
    try {
      const r = await api('GET', '/api/consults');
      if (mine !== seq) return;
      consults = r.consults;
      draw();
    } catch (e) { if (mine === seq) err.replaceChildren(errorBox(e)); }
  }

  // Live: every consult event refetches the list; presence redraws the panel. A request that
  // someone else accepted leaves this inbox, with a word saying so.
  listen('consult', async msg => {
    const before = consults.find(c => c.id === msg.consult && c.state === 'requested');
    await load();
    if (msg.event === 'accepted' && before && !consults.some(c => c.id === msg.consult && c.can.length)) {
      taken.prepend(h('div', { class: 'notice taken', role: 'status', 'data-consult': before.id },
        `${URGENCY[before.urgency] || before.urgency} ${before.specialty} request from ${before.from_site}: taken by another specialist.`));
    }
  });
  listen('open', load);
  listen('presence', drawPresence);
  setNeed('presence', { type: 'watch', presence: true });
  onPageLeave(() => { dropNeed('presence'); sendSocket({ type: 'watch', presence: false }); presenceKnown = false; });
  main.classList.add('roomy'); // seven columns and the presence panel
  onPageLeave(() => main.classList.remove('roomy'));

  show(h('h1', {}, can('consult.answer') ? 'Consult inbox' : 'Video consults'),
    can('consult.request') ? h('p', {}, h('a', { class: 'button', href: '#/consults/new', id: 'new-consult' }, 'Request a video consult')) : null,
    banners, taken, err,
    h('div', { class: 'consults-layout' },
      h('section', {}, list),
      h('aside', { class: 'box' }, h('h2', {}, 'Who is online'), people)));
  api('GET', '/api/specialists').then(r => { specialists = r.specialists; drawPresence(); }).catch(e => err.append(errorBox(e)));
  load();
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
    .flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function consultPage(id) {
  const show = startPage();
  const err = h('div');
  // Fields made once, so a live refresh keeps what is being typed.
  const opinionText = h('textarea', { name: 'text', required: true, rows: 8, placeholder: 'Findings, impression, recommendation' });
  const declineReason = h('input', { id: 'decline-reason', placeholder: 'Reason for declining', 'aria-label': 'Reason for declining' });
  const cancelReason = h('input', { id: 'cancel-reason', placeholder: 'Reason (optional)', 'aria-label': 'Reason for cancelling' });
  let seq = 0;

  // Runs one step of the consult with `btn` held down; the page refetches after it.
  const act = async (btn, path, body, after = load) => {
    btn.disabled = true;
    err.replaceChildren();
    try { await api('POST', `${consultPath(id)}/${path}`, body); await after(); }
    catch (e) { err.replaceChildren(errorBox(e)); btn.disabled = false; }
  };
  const refuse = text => err.replaceChildren(errorBox(new Error(text)));

  function render(c) {
    const may = s => c.can.includes(s);
    const latest = c.opinions.length ? c.opinions[c.opinions.length - 1].version : null;
    const buttons = [];
    if (may('accept')) buttons.push(h('button', { id: 'accept', class: 'primary big', type: 'button', onclick: ev => act(ev.currentTarget, 'accept') }, 'Accept'));
    if (may('join')) buttons.push(h('a', { id: 'join-call', class: 'button big', href: `#/call/${encodeURIComponent(c.id)}` }, 'Join the video call'));
    if (may('complete')) buttons.push(h('button', { id: 'complete', class: 'big', type: 'button', onclick: ev => act(ev.currentTarget, 'complete') }, 'End the consult'));
    if (may('decline')) {
      buttons.push(h('span', { class: 'inline-form' }, declineReason, h('button', {
        id: 'decline', class: 'big', type: 'button', onclick: ev => {
          const reason = declineReason.value.trim();
          if (!reason) return refuse('Give a reason for declining.');
          // A specialist who declined may no longer see the request: back to the inbox.
          act(ev.currentTarget, 'decline', { reason }, () => { location.hash = '#/consults'; });
        },
      }, 'Decline')));
    }
    if (may('cancel')) {
      buttons.push(h('span', { class: 'inline-form' }, cancelReason, h('button', {
        id: 'cancel', class: 'big danger', type: 'button',
        onclick: ev => act(ev.currentTarget, 'cancel', cancelReason.value.trim() ? { reason: cancelReason.value.trim() } : {}),
      }, 'Cancel the request')));
    }
    const opinions = c.opinions.length ? h('ol', { id: 'opinions', class: 'opinions' }, c.opinions.map(o =>
      h('li', { 'data-version': o.version, class: o.version === latest ? 'latest' : 'superseded' },
        h('div', { class: 'opinion-head' }, `Version ${o.version} · signed by ${o.signed_by} · ${when(o.signed_at)}`,
          o.version === latest ? h('span', { class: 'tag' }, 'latest') : h('span', { class: 'tag muted' }, 'superseded')),
        h('div', { class: 'opinion-text' }, o.text)))) : null;
    let signForm = null;
    if (may('sign')) {
      const label = c.opinions.length ? 'Sign amended opinion' : 'Sign opinion';
      const sign = h('button', { id: 'sign-opinion', class: 'primary big', type: 'submit' }, label);
      signForm = h('form', { id: 'opinion-form', class: 'box' },
        h('h2', {}, c.opinions.length ? 'Amend the opinion' : 'Your opinion'),
        field('Opinion (signed with your name; a signed version is never changed, an amendment is a new version)', opinionText),
        h('p', {}, sign));
      signForm.addEventListener('submit', ev => {
        ev.preventDefault();
        const text = opinionText.value.trim();
        if (!text) return refuse('Write the opinion before signing it.');
        act(sign, 'opinions', { text }, async () => { opinionText.value = ''; await load(); });
      });
    }
    const ack = c.acknowledged
      ? h('p', { id: 'acknowledged', class: 'notice' }, `Acknowledged by ${c.acknowledged.by} on ${when(c.acknowledged.at)} (version ${c.acknowledged.version})`,
        latest && c.acknowledged.version !== latest ? ` — version ${latest} is not yet acknowledged.` : '.')
      : null;
    return [
      h('h1', {}, urgencyBadge(c.urgency), ` ${c.specialty} consult`),
      c.escalated && c.state === 'requested' ? escalatedBanner(c) : null,
      h('div', { id: 'consult', 'data-state': c.state, class: `box level-${c.urgency}` },
        facts([
          ['State', h('span', { class: `state state-${c.state}` }, STATES[c.state] || c.state)],
          ['Urgency', URGENCY[c.urgency] || c.urgency],
          ['Specialty', c.specialty],
          ['Requested by', `${c.requested_by} (${c.from_site}) on ${when(c.created_at)}`],
          ['Scheduled for', c.scheduled_at ? when(c.scheduled_at) : null],
          ['Specialist asked', c.specialist || 'any specialist of the specialty'],
          ['Accepted by', c.accepted_by],
          ['Declined', c.decline_reason],
          ['Cancelled', c.cancel_reason || (c.state === 'cancelled' ? 'no reason given' : null)],
        ]),
        h('h2', {}, 'Case summary'), h('div', { class: 'summary' }, c.summary),
        h('h2', {}, 'Studies'),
        // Another site's images reach the consultant's site when they accept, not before.
        c.studies.length && c.state === 'requested' && c.from_site !== me.site.id
          ? h('p', { class: 'muted', id: 'studies-on-accept' },
            `${c.studies.length} ${c.studies.length === 1 ? 'study' : 'studies'} attached; the images open once you accept.`)
          : c.studies.length
            ? h('ul', { id: 'consult-studies' }, c.studies.map(uid => h('li', {},
              h('a', { class: 'open-study', href: viewerUrl(uid), target: '_blank', rel: 'noopener' }, 'Open in viewer'), ' ', h('code', {}, uid))))
            : h('p', { class: 'muted' }, 'No studies attached.')),
      err,
      buttons.length ? h('div', { class: 'actions-bar' }, buttons) : null,
      opinions ? [h('h2', {}, c.opinions.length > 1 ? 'Signed opinions (every version is kept)' : 'Signed opinion'), opinions] : null,
      ack,
      may('acknowledge') ? h('p', {}, h('button', { id: 'acknowledge', class: 'primary big', type: 'button', onclick: ev => act(ev.currentTarget, 'acknowledge') }, `Acknowledge version ${latest}`)) : null,
      signForm,
      h('p', {}, h('a', { href: '#/consults' }, 'All consults')),
    ];
  }

  let takenByOther = false;
  async function load() {
    const mine = ++seq;
    try {
      const c = await api('GET', consultPath(id));
      if (mine === seq) show(...render(c));
    } catch (e) {
      if (mine !== seq) return;
      // Open while another specialist accepted it: say so, rather than "not found".
      const why = takenByOther && e.status === 404
        ? h('div', { class: 'notice taken', role: 'status' }, 'Another specialist accepted this consult; it has left your inbox.')
        : errorBox(e);
      show(h('h1', {}, 'Consult'), why, h('p', {}, h('a', { href: '#/consults' }, 'All consults')));
    }
  }
  listen('consult', m => { if (m.consult === id) { takenByOther = m.event === 'accepted'; load(); } });
  listen('open', load);
  load();
}

// ---- the call (WebRTC between browsers; Ferry only relays the signalling) ----

const CALL_STATUS = {
  preview: 'Preview: check your camera and microphone, then join.',
  connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…', ended: 'The call has ended.',
};
const iceUfrag = sdp => (/^a=ice-ufrag:(\S+)/m.exec(sdp || '') || [])[1] || null;
const videoTransceivers = pc => pc.getTransceivers()
  .filter(t => t.receiver.track.kind === 'video' && t.currentDirection !== 'stopped');

function callPage(id) {
  const show = startPage();
  const room = id;
  // For the tests and for anyone looking from the console.
  const call = { pcs: new Map(), restarts: 0, status: 'preview', audioOnly: false, quality: null };
  window.ferryCall = call;
  // One entry per other participant: their connection and the perfect-negotiation state.
  const peers = new Map();
  const away = new Set(); // participants whose socket dropped (they keep their place a while)
  let local = new MediaStream(), mic = null, cam = null, screen = null;
  let ice = { iceServers: [] }, iceExpires = 0;
  // wantIn: the person pressed join and has not hung up; inRoom: the server said `joined` on
  // the socket open now; wasIn: it did once (a later drop is "reconnecting", not "connecting").
  let wantIn = false, inRoom = false, wasIn = false, ended = false;
  let consult = null, statsTimer = null, sampling = false, badSamples = 0;

  // ---- elements ----
  const statusEl = h('span', { id: 'call-status', class: 'pill', 'data-status': 'preview', role: 'status' }, CALL_STATUS.preview);
  const qualityEl = h('span', { id: 'quality', class: 'pill', 'data-level': 'unknown', title: 'Connection quality' }, 'Connection: —');
  const localVideo = h('video', { id: 'local', autoplay: true, playsinline: true });
  localVideo.muted = true; // never play one's own microphone back
  const remotes = h('div', { id: 'remotes' });
  const mediaNotice = h('div', { id: 'media-notice', class: 'notice', hidden: true });
  const stepDownNotice = h('div', { id: 'step-down-notice', class: 'notice', hidden: true, role: 'status' },
    'Video paused: the connection cannot carry it. Audio continues. ',
    h('button', { id: 'video-again', class: 'small', type: 'button', onclick: () => videoAgain() }, 'Try video again'));
  const callError = h('div', { id: 'call-error', class: 'error', role: 'alert', hidden: true });
  const endedNotice = h('div', { id: 'call-ended', class: 'notice', hidden: true });
  const consultInfo = h('div', { class: 'call-consult' });
  const studiesEl = h('ul', { id: 'consult-studies' });
  const viewer = h('iframe', { id: 'viewer', title: 'Image viewer', hidden: true });
  const viewerTab = h('a', { class: 'small-link', target: '_blank', rel: 'noopener', hidden: true }, 'Open the viewer in a new tab');
  const chatLog = h('ul', { id: 'chat-log', 'aria-live': 'polite' });
  const chatInput = h('input', { name: 'text', autocomplete: 'off', placeholder: 'Write to the others in the call', 'aria-label': 'Chat message', maxlength: 2000 });
  const chatForm = h('form', { id: 'chat-form', class: 'chat-form' }, chatInput, h('button', { class: 'primary', type: 'submit' }, 'Send'));
  const control = (cid, label, fn) => h('button', { id: cid, class: 'control', type: 'button', 'aria-pressed': 'false', onclick: fn }, label);
  const joinBtn = h('button', { id: 'join', class: 'primary control', type: 'button', disabled: true, onclick: () => join() }, 'Join the call');
  const muteBtn = control('mute', 'Mute', () => toggleMute());
  const cameraBtn = control('camera', 'Camera off', () => toggleCamera());
  const screenBtn = control('screen', 'Share screen', () => toggleScreen());
  const audioOnlyBtn = control('audio-only', 'Audio only', () => { stepDownNotice.hidden = true; badSamples = 0; setAudioOnly(!call.audioOnly); });
  const hangupBtn = h('button', { id: 'hangup', class: 'control danger', type: 'button', onclick: () => hangup() }, 'Hang up');
  const endBtn = h('button', { id: 'end-consult', class: 'control', type: 'button', hidden: true, onclick: () => endConsult() }, 'End the consult');
  for (const b of [muteBtn, cameraBtn, screenBtn, audioOnlyBtn]) b.disabled = true;
  const press = (btn, on, label) => { btn.setAttribute('aria-pressed', String(on)); btn.textContent = label; };
  const note = text => { mediaNotice.hidden = false; mediaNotice.textContent = text; };
  const showError = text => { callError.hidden = false; callError.textContent = text; };

  // ---- status ----
  function updateStatus() {
    const pcs = [...peers.values()].map(p => p.pc.connectionState);
    let s;
    if (ended) s = 'ended';
    else if (!wantIn) s = 'preview';
    else if (!inRoom) s = wasIn ? 'reconnecting' : 'connecting';
    else if (away.size || pcs.some(st => st === 'disconnected' || st === 'failed')) s = 'reconnecting';
    else if (pcs.includes('connected')) s = 'connected';
    else s = 'connecting';
    call.status = s;
    statusEl.dataset.status = s;
    statusEl.textContent = s === 'connecting' && inRoom && !peers.size ? 'Waiting for the other participant to join…'
      : s === 'reconnecting' && away.size ? `Reconnecting: ${[...away].join(', ')} lost the connection…`
        : CALL_STATUS[s];
  }

  // ---- the consult beside the call: its studies in the viewer ----
  function openStudy(uid) {
    viewer.hidden = false;
    viewer.src = viewerUrl(uid);
    viewerTab.hidden = false;
    viewerTab.href = viewerUrl(uid);
    for (const a of studiesEl.querySelectorAll('a.open-study')) a.classList.toggle('on', a.dataset.study === uid);
  }
  async function loadConsult() {
    try { consult = await api('GET', consultPath(id)); } catch (e) { consultInfo.replaceChildren(errorBox(e)); return; }
    const c = consult;
    consultInfo.replaceChildren(
      h('div', {}, urgencyBadge(c.urgency), ` ${c.specialty} · requested by ${c.requested_by} (${c.from_site})`,
        c.accepted_by ? ` · with ${c.accepted_by}` : ''),
      h('details', {}, h('summary', {}, 'Case summary'), h('div', { class: 'summary' }, c.summary)));
    studiesEl.replaceChildren(...c.studies.map(uid => h('li', {}, h('a', {
      class: 'open-study', href: viewerUrl(uid), 'data-study': uid,
      onclick: ev => { ev.preventDefault(); openStudy(uid); },
    }, uid))));
    if (!c.studies.length) studiesEl.append(h('li', { class: 'muted' }, 'No studies attached.'));
    // The first study opens by itself; later refreshes leave the one being read alone.
    if (c.studies.length && viewer.hidden) openStudy(c.studies[0]);
    else if (!viewer.hidden) for (const a of studiesEl.querySelectorAll('a.open-study')) a.classList.toggle('on', viewer.src.endsWith(encodeURIComponent(a.dataset.study)));
    endBtn.hidden = !c.can.includes('complete') || ended;
  }

  // ---- local media ----
  async function preview() {
    try {
      local = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    } catch (e) {
      try {
        local = await navigator.mediaDevices.getUserMedia({ audio: true });
        note(`The camera could not be started (${e.message || e.name}); you take part with audio only.`);
      } catch (e2) {
        note(`Neither camera nor microphone could be started (${e2.message || e2.name}). You can still join to see and hear the others.`);
      }
    }
    if (ended) { local.getTracks().forEach(t => t.stop()); return; }
    mic = local.getAudioTracks()[0] || null;
    cam = local.getVideoTracks()[0] || null;
    localVideo.srcObject = local;
    muteBtn.disabled = !mic;
    cameraBtn.disabled = !cam;
    screenBtn.disabled = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
    audioOnlyBtn.disabled = false;
    joinBtn.disabled = false;
  }

  const currentVideo = () => (call.audioOnly ? null : screen || cam);

  // Puts the current video source (camera, screen, or none in audio-only) on a connection's
  // video senders. Audio only also stops receiving: "inactive" renegotiates, so the other side
  // stops sending video too.
  async function applyVideoTo(pc) {
    const track = currentVideo();
    const dir = call.audioOnly ? 'inactive' : track ? 'sendrecv' : 'recvonly';
    for (const t of videoTransceivers(pc)) {
      try {
        if (t.sender.track !== track) await t.sender.replaceTrack(track);
        if (t.direction !== dir) t.direction = dir;
      } catch (e) { console.warn('video sender', e); }
    }
  }
  async function applyVideo() {
    await Promise.all([...peers.values()].map(p => applyVideoTo(p.pc)));
  }

  function attachMedia(pc) {
    if (mic) pc.addTrack(mic, local); else pc.addTransceiver('audio', { direction: 'recvonly' });
    const video = screen || cam;
    if (video) pc.addTrack(video, local); else pc.addTransceiver('video', { direction: 'recvonly' });
    if (call.audioOnly) applyVideoTo(pc);
  }

  function toggleMute() {
    if (!mic) return;
    mic.enabled = !mic.enabled;
    press(muteBtn, !mic.enabled, mic.enabled ? 'Mute' : 'Unmute');
  }
  function toggleCamera() {
    if (!cam) return;
    cam.enabled = !cam.enabled; // the others see black frames; the connection stays as it is
    press(cameraBtn, !cam.enabled, cam.enabled ? 'Camera off' : 'Camera on');
  }
  async function toggleScreen() {
    if (screen) return stopScreen();
    let s;
    try { s = await navigator.mediaDevices.getDisplayMedia({ video: true }); }
    catch (e) { if (e.name !== 'NotAllowedError') note(`The screen could not be shared (${e.message || e.name}).`); return; }
    if (ended) { s.getTracks().forEach(t => t.stop()); return; }
    screen = s.getVideoTracks()[0];
    screen.addEventListener('ended', stopScreen); // the browser's own "stop sharing" button
    localVideo.srcObject = new MediaStream([screen]);
    press(screenBtn, true, 'Stop sharing');
    // Sharing is asking to send video: it ends audio-only.
    if (call.audioOnly) await setAudioOnly(false); else await applyVideo();
  }
  async function stopScreen() {
    if (!screen) return;
    screen.stop();
    screen = null;
    if (!ended) localVideo.srcObject = local;
    press(screenBtn, false, 'Share screen');
    await applyVideo(); // back to the camera
  }
  async function setAudioOnly(on) {
    call.audioOnly = on;
    press(audioOnlyBtn, on, on ? 'Video back on' : 'Audio only');
    if (!on) stepDownNotice.hidden = true;
    remotes.classList.toggle('audio-only', on);
    await applyVideo();
  }
  function videoAgain() {
    stepDownNotice.hidden = true;
    badSamples = 0;
    setAudioOnly(false);
  }

  // ---- connections, one per other participant ("perfect negotiation") ----
  function signal(to, msg) {
    // Nothing reaches someone whose socket dropped, nor leaves while ours is down (before
    // `joined` again the server would refuse it); the return brings an ICE restart.
    if (!inRoom || away.has(to)) return;
    sendSocket({ ...msg, room, to });
  }

  // awaitOffer: they make the first offer (they joined after us); we do not offer until then.
  function ensurePeer(user, awaitOffer) {
    const known = peers.get(user);
    if (known) return known;
    const pc = new RTCPeerConnection(ice);
    const p = {
      user, pc, polite: me.user.id < user, makingOffer: false, ignoreOffer: false, awaitOffer,
      pending: [], queue: Promise.resolve(), remoteUfrag: null, counts: null, tile: null, video: null, stream: null,
    };
    peers.set(user, p);
    call.pcs.set(user, pc);
    attachMedia(pc);
    pc.onnegotiationneeded = () => negotiate(p);
    pc.onicecandidate = ({ candidate }) => { if (candidate) signal(user, { type: 'candidate', candidate: candidate.toJSON() }); };
    pc.ontrack = ({ track, streams }) => showRemote(p, track, streams);
    pc.onconnectionstatechange = () => {
      // A path that failed (network change, NAT timeout) gets new candidates.
      if (pc.connectionState === 'failed' && inRoom && !away.has(user)) restart(p);
      updateStatus();
    };
    if (awaitOffer) {
      // Should their offer never come, make one ourselves.
      setTimeout(() => {
        if (peers.get(user) === p && p.awaitOffer && !pc.remoteDescription) { p.awaitOffer = false; negotiate(p); }
      }, 5000);
    }
    updateStatus();
    return p;
  }

  async function negotiate(p) {
    const pc = p.pc;
    if (p.awaitOffer || !inRoom || away.has(p.user) || p.makingOffer || pc.signalingState !== 'stable') return;
    try {
      p.makingOffer = true;
      await pc.setLocalDescription();
      signal(p.user, { type: 'offer', sdp: pc.localDescription.sdp });
    } catch (e) {
      console.warn('offer failed', e);
    } finally {
      p.makingOffer = false;
    }
  }

  async function onDescription(p, type, sdp) {
    const pc = p.pc;
    if (pc.signalingState === 'closed') return;
    // Glare: both offered at once. The polite side (lower user id) gives way and takes
    // theirs (setRemoteDescription rolls its own back); the impolite side ignores theirs.
    const collision = type === 'offer' && (p.makingOffer || pc.signalingState !== 'stable');
    p.ignoreOffer = !p.polite && collision;
    if (p.ignoreOffer) return;
    if (type === 'answer' && pc.signalingState !== 'have-local-offer') return; // a stale answer
    const ufrag = iceUfrag(sdp);
    // A new ufrag in their offer: they restarted ICE, and answering it is our part of it.
    if (type === 'offer' && p.remoteUfrag && ufrag && ufrag !== p.remoteUfrag) call.restarts++;
    if (type === 'offer') p.awaitOffer = false;
    await pc.setRemoteDescription({ type, sdp });
    p.remoteUfrag = ufrag || p.remoteUfrag;
    for (const c of p.pending.splice(0)) await pc.addIceCandidate(c).catch(e => console.warn('candidate', e));
    if (type === 'offer') {
      await pc.setLocalDescription();
      signal(p.user, { type: 'answer', sdp: pc.localDescription.sdp });
    }
  }

  async function onCandidate(p, candidate) {
    // Candidates may overtake the description they belong to: keep them until it is set.
    if (!p.pc.remoteDescription) { p.pending.push(candidate); return; }
    try { await p.pc.addIceCandidate(candidate); }
    catch (e) { if (!p.ignoreOffer) console.warn('candidate', e); }
  }

  // Each peer's signalling is handled in order of arrival, one message at a time.
  function inOrder(p, fn) {
    p.queue = p.queue.then(fn).catch(e => console.warn('signalling', e));
  }

  // TURN credentials expire; an ICE restart late in a long call asks for new ones first.
  async function freshIce() {
    if (!iceExpires || Date.now() / 1000 < iceExpires - 60) return;
    try {
      const t = await api('GET', '/api/turn');
      ice = { iceServers: t.iceServers || [] };
      if (t.iceTransportPolicy) ice.iceTransportPolicy = t.iceTransportPolicy;
      iceExpires = t.expires || 0;
      for (const p of peers.values()) p.pc.setConfiguration(ice);
    } catch (e) { console.warn('turn', e); }
  }

  async function restart(p) {
    await freshIce();
    const pc = p.pc;
    if (pc.signalingState === 'closed' || peers.get(p.user) !== p) return;
    // An offer of ours still waiting for an answer never reached them: take it back.
    if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
    pc.restartIce();
    call.restarts++;
    // restartIce fires negotiationneeded only if no negotiation was already pending.
    negotiate(p);
  }

  function showRemote(p, track, streams) {
    if (!p.video) {
      p.video = h('video', { autoplay: true, playsinline: true, 'data-peer': p.user });
      p.tile = h('figure', { class: 'remote' }, p.video, h('figcaption', {}, p.user));
      remotes.append(p.tile);
    }
    let stream = streams[0];
    if (!stream) {
      p.stream = p.stream || new MediaStream();
      p.stream.addTrack(track);
      stream = p.stream;
    }
    if (p.video.srcObject !== stream) p.video.srcObject = stream;
    p.video.play().catch(() => { /* plays once the page may make sound */ });
  }

  function closePeer(user) {
    const p = peers.get(user);
    if (!p) return;
    p.pc.close();
    if (p.tile) p.tile.remove();
    peers.delete(user);
    call.pcs.delete(user);
  }

  // ---- connection quality ----
  async function readStats(p) {
    const stats = await p.pc.getStats();
    let pairId = null, pair = null, remoteRtt, lost = 0, received = 0, limit = null, fps, sentBytes = 0, height;
    stats.forEach(r => { if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId; });
    stats.forEach(r => {
      if (r.type === 'candidate-pair' && (pairId ? r.id === pairId : r.nominated && r.state === 'succeeded')) pair = r;
      else if (r.type === 'inbound-rtp') { lost += r.packetsLost || 0; received += r.packetsReceived || 0; }
      else if (r.type === 'outbound-rtp' && r.kind === 'video') {
        limit = r.qualityLimitationReason; fps = r.framesPerSecond; sentBytes += r.bytesSent || 0; height = r.frameHeight;
      }
      else if (r.type === 'remote-inbound-rtp' && r.roundTripTime !== undefined && remoteRtt === undefined) remoteRtt = r.roundTripTime;
    });
    const rtt = pair && pair.currentRoundTripTime !== undefined ? pair.currentRoundTripTime : remoteRtt;
    // Loss over the last interval, not since the call began.
    const prev = p.counts || { lost: 0, received: 0, sentBytes: 0, at: 0 };
    const at = performance.now();
    p.counts = { lost, received, sentBytes, at };
    const dl = Math.max(0, lost - prev.lost), dr = Math.max(0, received - prev.received);
    const kbps = prev.at ? Math.max(0, sentBytes - prev.sentBytes) * 8 / (at - prev.at) : null;
    // Camera video that the link cannot carry: held back for bandwidth to a few frames a
    // second, to a postage stamp, or to a trickle of bits no picture can be made of. (A shared
    // screen is often sent slowly on purpose, so it does not count.)
    const starved = !call.audioOnly && !screen && limit === 'bandwidth'
      && ((fps !== undefined && fps < 8) || (height !== undefined && height < 120) || (kbps !== null && kbps < 40));
    return { rtt: rtt === undefined ? null : rtt * 1000, loss: dl + dr ? dl / (dl + dr) : 0, starved, limit, fps: fps ?? null };
  }

  function showQuality(q) {
    let level = 'unknown', text = 'Connection: —';
    if (q) {
      level = q.loss > 0.10 || q.rtt > 400 ? 'poor' : q.loss > 0.02 || q.rtt > 150 || q.starved ? 'fair' : 'good';
      text = [level[0].toUpperCase() + level.slice(1), q.rtt !== null ? `${Math.round(q.rtt)} ms` : null,
        q.loss >= 0.01 ? `${Math.round(q.loss * 100)} % loss` : null, q.starved ? 'video starved' : null].filter(Boolean).join(' · ');
    }
    qualityEl.dataset.level = level;
    qualityEl.textContent = text;
    call.quality = q ? { level, ...q } : null;
  }

  async function sample() {
    if (sampling || ended) return;
    sampling = true;
    try {
      const live = [...peers.values()].filter(p => p.pc.connectionState === 'connected');
      if (!live.length) { showQuality(null); badSamples = 0; return; }
      const qs = await Promise.all(live.map(readStats));
      const rtts = qs.map(q => q.rtt).filter(r => r !== null);
      const q = { rtt: rtts.length ? Math.max(...rtts) : null, loss: Math.max(...qs.map(x => x.loss)), starved: qs.some(x => x.starved) };
      showQuality(q);
      // Three bad samples in a row (6 s), not one spike, step video down by itself.
      badSamples = q.loss > 0.10 || q.starved ? badSamples + 1 : 0;
      if (badSamples >= 3 && !call.audioOnly) {
        await setAudioOnly(true);
        stepDownNotice.hidden = false;
      }
    } catch (e) {
      console.warn('stats', e);
    } finally {
      sampling = false;
    }
  }

  // ---- joining, leaving ----
  async function join() {
    joinBtn.disabled = true;
    callError.hidden = true;
    wantIn = true;
    updateStatus();
    try {
      const t = await api('GET', '/api/turn');
      ice = { iceServers: t.iceServers || [] };
      if (t.iceTransportPolicy) ice.iceTransportPolicy = t.iceTransportPolicy;
      iceExpires = t.expires || 0;
    } catch (e) {
      note(`No relay server could be had (${e.message}); trying a direct connection.`);
    }
    if (ended || !wantIn) return;
    connectSocket();
    setNeed('call', { type: 'join', room }); // re-sent by the socket after every reconnect
    statsTimer = statsTimer || setInterval(sample, 2000);
  }

  function teardown(message) {
    if (ended) return;
    ended = true;
    wantIn = false;
    inRoom = false;
    dropNeed('call');
    clearInterval(statsTimer);
    for (const u of [...peers.keys()]) closePeer(u);
    for (const t of [...local.getTracks(), screen]) if (t) t.stop();
    localVideo.srcObject = null;
    for (const b of [joinBtn, muteBtn, cameraBtn, screenBtn, audioOnlyBtn, endBtn]) b.disabled = true;
    joinBtn.hidden = true;
    endBtn.hidden = true;
    if (message) {
      endedNotice.hidden = false;
      endedNotice.replaceChildren(`${message} `, h('a', { href: consultHash(id) }, 'Back to the consult'));
    }
    showQuality(null);
    updateStatus();
  }

  function hangup() {
    if (inRoom) sendSocket({ type: 'leave', room });
    teardown();
    location.hash = consultHash(id);
  }

  async function endConsult() {
    endBtn.disabled = true;
    try {
      await api('POST', `${consultPath(id)}/complete`);
      hangup();
    } catch (e) {
      showError(e.message);
      endBtn.disabled = false;
    }
  }

  // ---- server messages ----
  const mine = m => m.room === room && !ended;
  listen('joined', m => {
    if (!mine(m) || !wantIn) return;
    inRoom = true;
    wasIn = true;
    joinBtn.hidden = true;
    callError.hidden = true;
    const here = new Set(m.peers.map(x => x.user));
    // Connections to people who left while we were away are over.
    for (const u of [...peers.keys()]) if (!here.has(u)) closePeer(u);
    for (const x of m.peers) {
      if (x.online) away.delete(x.user); else away.add(x.user);
      const p = peers.get(x.user);
      if (!m.resumed) {
        // A fresh entry: whatever we held is stale. We are the newcomer, so we offer.
        if (p) closePeer(x.user);
        if (x.online) ensurePeer(x.user, false);
      } else if (p && p.pc.signalingState === 'have-local-offer') {
        // An offer made as our socket dropped may be lost; take it back, negotiation re-fires.
        inOrder(p, () => p.pc.setLocalDescription({ type: 'rollback' }));
      }
      // Resumed with a connection kept: they restart ICE (peer-resumed) and send an offer.
    }
    updateStatus();
  });
  listen('peer-joined', m => {
    if (!mine(m) || !inRoom) return;
    closePeer(m.user);
    away.delete(m.user);
    ensurePeer(m.user, true);
  });
  listen('peer-away', m => { if (mine(m)) { away.add(m.user); updateStatus(); } });
  listen('peer-resumed', m => {
    if (!mine(m) || !inRoom) return;
    away.delete(m.user);
    const p = peers.get(m.user);
    if (p && p.pc.signalingState !== 'closed') restart(p); else { closePeer(m.user); ensurePeer(m.user, false); }
    updateStatus();
  });
  listen('peer-left', m => {
    if (!mine(m)) return;
    away.delete(m.user);
    closePeer(m.user);
    chatLog.append(h('li', { class: 'system' }, `${m.user} left the call.`));
    updateStatus();
  });
  listen('left', m => { if (mine(m)) teardown('The call has ended.'); });
  listen('offer', m => {
    if (!mine(m) || !inRoom) return;
    const p = ensurePeer(m.from, true);
    inOrder(p, () => onDescription(p, 'offer', m.sdp));
  });
  listen('answer', m => {
    const p = mine(m) && peers.get(m.from);
    if (p) inOrder(p, () => onDescription(p, 'answer', m.sdp));
  });
  listen('candidate', m => {
    const p = mine(m) && peers.get(m.from);
    if (p) inOrder(p, () => onCandidate(p, m.candidate));
  });
  listen('chat', m => {
    if (!mine(m)) return;
    const at = new Date(m.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    chatLog.append(h('li', { 'data-from': m.from, class: m.from === me.user.id ? 'own' : '' },
      h('span', { class: 'chat-from' }, m.from === me.user.id ? 'You' : m.from), ' ',
      h('time', { class: 'muted' }, at), h('div', { class: 'chat-text' }, m.text)));
    chatLog.scrollTop = chatLog.scrollHeight;
  });
  listen('error', m => {
    if (ended || !wantIn) return;
    // Races around a dropped socket (a message for someone who just left, or sent as ours
    // dropped); the rejoin and the ICE restart that follows set things right.
    if (m.code === 'peer_unavailable' || m.code === 'not_in_room') { console.warn('signalling', m); return; }
    showError(`${m.detail || 'Refused'} (${m.code})`);
    if (!inRoom && (m.code === 'not_allowed' || m.code === 'too_many_rooms')) {
      // The join itself was refused: stop asking on every reconnect.
      wantIn = false;
      dropNeed('call');
      joinBtn.disabled = false;
      updateStatus();
    }
  });
  listen('close', ev => {
    if (!wantIn) return;
    inRoom = false;
    // The same person joined from another window, which now holds the call: end it here,
    // or the two windows would keep taking it from each other.
    if (/replaced/.test(ev.reason || '')) teardown('The call continues in another window.');
    updateStatus();
  });
  listen('consult', m => {
    if (m.consult !== id) return;
    loadConsult();
    if (m.state === 'completed' || m.state === 'cancelled') teardown('The consult has ended.');
  });

  chatForm.addEventListener('submit', ev => {
    ev.preventDefault();
    const text = chatInput.value.trim();
    if (!text) return;
    if (!inRoom) { showError('Join the call to chat.'); return; }
    if (sendSocket({ type: 'chat', room, text })) chatInput.value = ''; // the server echoes it to everyone
  });

  main.classList.add('wide');
  onPageLeave(() => {
    main.classList.remove('wide');
    if (!ended) {
      if (inRoom) sendSocket({ type: 'leave', room });
      teardown();
    }
  });

  show(
    h('div', { class: 'call-head' }, h('h1', {}, 'Video consult'), statusEl, qualityEl),
    h('div', { class: 'call-layout' },
      h('section', { class: 'call-pane' },
        consultInfo,
        h('div', { class: 'stage' }, remotes, localVideo),
        mediaNotice, stepDownNotice, callError, endedNotice,
        h('div', { class: 'controls' }, joinBtn, muteBtn, cameraBtn, screenBtn, audioOnlyBtn, hangupBtn, endBtn),
        h('section', { class: 'chat box' }, h('h2', {}, 'Chat'), chatLog, chatForm)),
      h('section', { class: 'viewer-pane' },
        h('h2', {}, 'Images'), studiesEl, viewer, viewerTab)));
  updateStatus();
  preview();
  loadConsult();
}

// ---- router ----

async function route() {
  leavePage();
  const hash = location.hash || '#/';
  if (hash === '#/login') { renderNav(); return loginPage(); }
  if (!me) await loadMe();
  if (!me) { location.hash = '#/login'; return; }
  // Again after the wait: a newer navigation may have started meanwhile; the latest page wins.
  leavePage();
  connectSocket();
  let m;
  try {
    if (hash === '#/' || hash === '') return homePage();
    if (hash === '#/tokens') return await myTokensPage();
    if (hash === '#/studies') return await studiesPage();
    if (hash === '#/upload') return uploadPage();
    if (hash === '#/consults') return consultsPage();
    if (hash === '#/consults/new') return await newConsultPage();
    if ((m = /^#\/consults\/([^/]+)$/.exec(hash))) return consultPage(decodeURIComponent(m[1]));
    if ((m = /^#\/call\/([^/]+)$/.exec(hash))) return callPage(decodeURIComponent(m[1]));
    if (hash.startsWith('#/admin')) {
      if (!can('admin.users')) return notPermitted();
      if (hash === '#/admin/users') return await usersPage();
      if (hash === '#/admin/devices') return await devicesPage();
      if (hash === '#/admin/audit') return await auditPage();
      return await sitesPage();
    }
    startPage()(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the home page')));
  } catch (e) {
    startPage()(errorBox(e));
  }
}

window.addEventListener('hashchange', route);
route();
