// Ferry web app: the entry module. It picks the language, draws the header and routes the
// location hash to a page module (pages/…); the shared pieces live in lib/. Plain ES modules,
// no build step. Every value from the server is put into the page as text (never as HTML).
// The server decides every request; the page only hides what would be refused.

import { h, leavePage, pagePinned, startPage } from './lib/dom.js';
import { errorBox } from './lib/errors.js';
import { initialLocale, onLocaleChange, setLocale, t } from './lib/i18n.js';
import { loginHash, parseRoute } from './lib/router.js';
import { can, session } from './lib/session.js';
import { applyDocumentLanguage, loadMe, renderNav } from './lib/shell.js';
import { connectSocket } from './lib/socket.js';
import { startCriticalWatch, stopCriticalWatch } from './pages/critical-banner.js';
import { homePage } from './pages/home.js';
import { loginPage } from './pages/login.js';

/** @typedef {import('./lib/router.js').Route} Route */

// Pages other than home and sign-in load when first visited.
const pages = {
  studies: () => import('./pages/studies.js'),
  upload: () => import('./pages/upload.js'),
  tokens: () => import('./pages/tokens.js'),
  consults: () => import('./pages/consults.js'),
  consultNew: () => import('./pages/consult-new.js'),
  consult: () => import('./pages/consult.js'),
  call: () => import('./pages/call/page.js'),
  ecgs: () => import('./pages/ecgs.js'),
  ecg: () => import('./pages/ecg.js'),
  ecgCalibrate: () => import('./pages/ecg-calibrate.js'),
  readings: () => import('./pages/readings.js'),
  reading: () => import('./pages/reading.js'),
  readingStats: () => import('./pages/reading-stats.js'),
  broadcasts: () => import('./pages/broadcasts.js'),
  broadcast: () => import('./pages/broadcast.js'),
  attendance: () => import('./pages/broadcast-attendance.js'),
  library: () => import('./pages/broadcast-library.js'),
  adminCommon: () => import('./pages/admin/common.js'),
  sites: () => import('./pages/admin/sites.js'),
  users: () => import('./pages/admin/users.js'),
  devices: () => import('./pages/admin/devices.js'),
  readingAdmin: () => import('./pages/admin/reading.js'),
  audit: () => import('./pages/admin/audit.js'),
};

/** @type {Route | null} */
let current = null;

/** @param {Route} r */
async function draw(r) {
  switch (r.name) {
    case 'home': return homePage();
    case 'tokens': return (await pages.tokens()).myTokensPage();
    case 'studies': return (await pages.studies()).studiesPage(
      r.study ? new URLSearchParams({ study: r.study })
        : r.unavailable ? new URLSearchParams({ unavailable: r.unavailable }) : undefined);
    case 'upload': return (await pages.upload()).uploadPage();
    case 'consults': return (await pages.consults()).consultsPage();
    case 'consult-new': return (await pages.consultNew()).newConsultPage();
    case 'consult': return (await pages.consult()).consultPage(r.id);
    case 'call': return (await pages.call()).callPage(r.id);
    case 'ecgs': return (await pages.ecgs()).ecgsPage(r.query);
    case 'ecg': return (await pages.ecg()).ecgPage(r.id);
    case 'ecg-calibrate': return (await pages.ecgCalibrate()).calibratePage(r.next);
    case 'readings': return (await pages.readings()).readingsPage(r.query);
    case 'reading': return (await pages.reading()).readingPage(r.id);
    case 'reading-stats': return (await pages.readingStats()).turnaroundPage(r.days);
    case 'broadcasts': return (await pages.broadcasts()).broadcastsPage(!!r.schedule);
    case 'broadcast': return (await pages.broadcast()).broadcastPage(r.id);
    case 'broadcast-attendance': return (await pages.attendance()).attendancePage(r.id);
    case 'broadcast-library': return (await pages.library()).libraryPage();
    case 'admin': {
      if (!can('admin.users')) return (await pages.adminCommon()).notPermitted();
      if (r.tab === 'users') return (await pages.users()).usersPage();
      if (r.tab === 'devices') return (await pages.devices()).devicesPage();
      if (r.tab === 'reading') return (await pages.readingAdmin()).readingCentrePage();
      if (r.tab === 'audit') return (await pages.audit()).auditPage();
      return (await pages.sites()).sitesPage();
    }
    default:
      return startPage()(h('h1', {}, t('notfound.title')), h('p', {}, h('a', { href: '#/' }, t('notfound.back'))));
  }
}

async function route() {
  leavePage();
  const wanted = location.hash;
  const r = parseRoute(wanted);
  current = r;
  if (r.name === 'login') { stopCriticalWatch(); renderNav(); return loginPage(r.next); }
  if (!session.me) await loadMe();
  if (!session.me) { location.hash = loginHash(wanted); return; }
  // Again after the wait: a newer navigation may have started meanwhile; the latest page wins.
  leavePage();
  connectSocket();
  // A clinic's unacknowledged critical results, above every page.
  startCriticalWatch();
  try {
    await draw(r);
  } catch (e) {
    startPage()(errorBox(e));
  }
}

setLocale(initialLocale(safeStorage(), navigator.languages));
applyDocumentLanguage();
onLocaleChange(() => {
  applyDocumentLanguage();
  renderNav();
  // The page shown is drawn again in the new language — except a call or a broadcast under
  // way, which would end.
  if (!current || (current.name !== 'call' && !pagePinned())) route();
});
window.addEventListener('hashchange', route);
route();

function safeStorage() {
  try { return window.localStorage; } catch (_) { return null; }
}
