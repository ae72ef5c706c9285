// Ferry web app: sign-in, a home page per role, and the administration pages.
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
    can('admin.users') ? h('a', { href: '#/admin/sites' }, 'Administration') : null,
    h('span', { class: 'muted', id: 'whoami' }, `${me.user.display_name} · ${me.site.name}`),
    h('button', { id: 'logout', onclick: logout }, 'Sign out'),
  ].filter(Boolean));
}

async function logout() {
  try { await api('POST', '/api/auth/logout'); } catch (_) { /* ended anyway */ }
  me = null;
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
  'consult.request': ['Request a video consult', 'Ask a specialist to see a patient with you, with the studies at hand.', 'video consults'],
  'imaging.read': ['Imaging studies', 'Studies of your site and those shared with it, in the viewer.', null, '#/studies'],
  'consult.answer': ['Consult inbox', 'Consult requests for your specialty; accept and join the call.', 'video consults'],
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

// ---- router ----

async function route() {
  const hash = location.hash || '#/';
  if (hash === '#/login') { renderNav(); return loginPage(); }
  if (!me) await loadMe();
  if (!me) { location.hash = '#/login'; return; }
  try {
    if (hash === '#/' || hash === '') return homePage();
    if (hash === '#/tokens') return await myTokensPage();
    if (hash === '#/studies') return await studiesPage();
    if (hash === '#/upload') return uploadPage();
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
