// Entry point: the header, the router and the login page. Pages are async
// functions (ctx) => Node; the router swaps them into <main>.
import { api, session, whenSessionExpires } from './api.js';
import { h, field, notify, showError } from './dom.js';
import { parseRoute, ADMIN_ROUTES } from './logic.js';
import { groupsView, groupView, taskView } from './tasks.js';
import { usersView, backupsView, healthView } from './admin.js';
import { groupAtView, taskAtView } from './history.js';
import { liveSync, liveHandlers, concerns } from './live.js';

// Route name → page (routes are parsed in logic.parseRoute).
const VIEWS = {
  groups: groupsView, group: groupView, task: taskView, groupAt: groupAtView, taskAt: taskAtView,
  users: usersView, backups: backupsView, health: healthView,
  notfound: async () => h('div', { class: 'page' },
    h('h1', { tabindex: -1 }, 'Page not found'),
    h('p', {}, 'There is nothing at this address. ', h('a', { href: '/' }, 'Go to the groups.'))),
};
const TITLES = { groupAt: 'Group in the past', taskAt: 'Task in the past', groups: 'Groups', users: 'Users', backups: 'Backups', health: 'Health', login: 'Log in' };

const main = document.getElementById('main');
let current = 0; // render generation: a slow page must not overwrite a newer one

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path); else history.pushState(null, '', path);
  render({ focus: true });
}

async function render({ focus = false, soft = false } = {}) {
  const gen = ++current;
  const route = parseRoute(location.pathname);
  if (!session.token) liveSync();
  if (!session.token && route.name !== 'login') return navigate('/login', { replace: true });
  if (session.token && route.name === 'login') return navigate('/', { replace: true });
  drawHeader(route);
  document.title = `${TITLES[route.name] || 'taskledger'} · taskledger`;

  // Redraws keep the focused control focused (e.g. a status select after a change).
  const active = document.activeElement;
  const keep = !focus && active?.id;
  const wasInMain = main.contains(active) && active !== main;
  if (!soft) main.setAttribute('aria-busy', 'true');
  const ctx = { params: route, refresh: () => render(), navigate };
  let page;
  try {
    if (route.name === 'login') page = loginView();
    else if (ADMIN_ROUTES.includes(route.name) && !session.isAdmin) page = adminsOnly();
    else page = await VIEWS[route.name](ctx);
  } catch (e) {
    if (gen !== current) return;
    if (e?.expired) return; // already on its way to the login page
    page = h('div', { class: 'page' }, h('h1', { tabindex: -1 }, 'Could not load this page'),
      h('p', { role: 'alert', class: 'notice error' }, e.message),
      h('p', {}, h('a', { href: '/' }, 'Back to the groups')));
  }
  if (gen !== current) return;
  // Connected once a page has loaded: the token has just proved good.
  liveSync();
  if (soft) {
    // A redraw for someone else's change: what the person is typing stays.
    const y = window.scrollY;
    keepTyping(main, page);
    main.replaceChildren(page);
    main.setAttribute('aria-busy', 'false');
    restoreFocus(page);
    window.scrollTo(0, y);
    return;
  }
  main.replaceChildren(page);
  main.setAttribute('aria-busy', 'false');
  const again = keep && document.getElementById(keep);
  const auto = main.querySelector('[autofocus]');
  if (again) again.focus();
  else if (focus || wasInMain) (auto || main.querySelector('h1') || main).focus();
  else if (auto) auto.focus();
}

// Text controls, in document order: the same page drawn again has the same
// ones in the same order (cards on the board carry selects only).
const TYPED = 'input:not([type=hidden]):not([type=checkbox]):not([type=radio]), textarea';
let refocus = null;

/** Carries the values (and the focus and caret) of the text controls the
 *  person has touched from the old page into the new one before the swap. */
function keepTyping(oldRoot, newRoot) {
  const olds = [...oldRoot.querySelectorAll(TYPED)];
  const news = [...newRoot.querySelectorAll(TYPED)];
  refocus = null;
  olds.forEach((o, i) => {
    const n = news[i];
    if (!n || n.tagName !== o.tagName || n.type !== o.type) return;
    const focused = document.activeElement === o;
    if (o.value !== o.defaultValue || focused) n.value = o.value;
    if (focused) {
      let sel = null;
      try { sel = [o.selectionStart, o.selectionEnd]; } catch { sel = null; }
      refocus = { el: n, sel };
    }
  });
}

function restoreFocus(page) {
  const r = refocus;
  refocus = null;
  if (!r || !page.contains(r.el)) return;
  r.el.focus({ preventScroll: true });
  if (r.sel && r.sel[0] != null) {
    try { r.el.setSelectionRange(r.sel[0], r.sel[1]); } catch { /* not a text field */ }
  }
}

// Entries from the event stream: redraw the page they concern, at most once
// per 150 ms, keeping what is being typed.
let redraw = null;
function softRender() {
  clearTimeout(redraw);
  redraw = setTimeout(() => { redraw = null; render({ soft: true }); }, 150);
}
liveHandlers({
  entry: (e) => {
    const route = parseRoute(location.pathname);
    // This tab redraws after its own changes; others' are what is new.
    if (!concerns(route, e) || e.user_name === session.user?.username) return;
    const who = e.user_name && e.user_name !== session.user?.username ? ` by ${e.user_name}` : '';
    if (e.entity === 'Group' && e.event_type === 'deleted' && route.name === 'group') {
      notify(`This group (“${e.group_name}”) was deleted${who}.`, 'error');
    } else if (e.entity === 'Task' && e.event_type === 'deleted' && route.name === 'task') {
      notify(`This task (“${e.task_name}”) was deleted${who}.`, 'error');
    }
    softRender();
  },
  reset: () => {
    // The tab that asked for the restore says so itself: not overwritten.
    if (!document.getElementById('notice').hasChildNodes()) {
      notify('The server\'s data was restored from a backup: this page was reloaded.', 'error');
    }
    softRender();
  },
});

function adminsOnly() {
  return h('div', { class: 'page' },
    h('h1', { tabindex: -1 }, 'Admins only'),
    h('p', { role: 'alert', class: 'notice error' }, 'This page is for administrators. Your account is a member account.'),
    h('p', {}, h('a', { href: '/' }, 'Go to the groups')));
}

function drawHeader(route) {
  const nav = document.getElementById('nav');
  const user = session.user;
  if (!session.token || !user) { nav.replaceChildren(); return; }
  const item = (href, name, label) => h('li', {},
    h('a', { href, 'aria-current': route.name === name ? 'page' : null }, label));
  nav.replaceChildren(
    h('ul', { class: 'plain nav' },
      item('/', 'groups', 'Groups'),
      session.isAdmin ? [item('/users', 'users', 'Users'), item('/backups', 'backups', 'Backups'),
        item('/health', 'health', 'Health')] : null),
    h('div', { class: 'who' },
      h('span', { class: 'small' }, user.username, ' ', h('span', { class: 'tag' }, user.role)),
      h('button', { type: 'button', onclick: logout }, 'Log out')));
}

async function logout() {
  try {
    await api('POST', '/api/auth/logout');
    session.clear();
    notify('You are logged out.');
    navigate('/login');
  } catch (e) {
    // Forget the token here anyway: the person asked to leave this tab.
    session.clear();
    navigate('/login');
    showError(e);
  }
}

function loginView() {
  const username = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', {
    class: 'card stack login',
    onsubmit: async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      try {
        const res = await api('POST', '/api/auth/login', {
          json: { username: username.value, password: password.value },
        });
        session.save(res.token, res.data);
        notify('');
        navigate('/');
      } catch (e) {
        showError(e);
        password.select();
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('h1', { tabindex: -1 }, 'Log in to taskledger'),
  field('Username', username), field('Password', password), h('div', {}, submit));
  return h('div', { class: 'page narrow' }, form);
}

whenSessionExpires((message) => {
  notify(`${message} Please log in again.`, 'error');
  navigate('/login', { replace: true });
});

// Same-origin links go through the router instead of reloading the page.
document.addEventListener('click', (ev) => {
  const a = ev.target.closest?.('a[href]');
  if (!a || a.target || a.hasAttribute('download') || ev.defaultPrevented || ev.button !== 0
    || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api')) return;
  if (url.hash && url.pathname === location.pathname) return; // the skip link
  ev.preventDefault();
  if (url.pathname !== location.pathname) { notify(''); navigate(url.pathname); }
});
window.addEventListener('popstate', () => render({ focus: true }));

render();
