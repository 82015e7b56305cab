// Live updates (SPEC §13): one EventSource per tab on /api/events/stream, the
// "live / reconnecting" indicator, and which entries concern the page on show.
// It only tells app.js to redraw; app.js keeps what the person is typing.
import { session } from './api.js';

let source = null;
let lastId = '';
let retry = null;
let backoff = 1000;
let onEntry = () => {};
let onReset = () => {};

function indicator(state) {
  const el = document.getElementById('live-indicator');
  if (!el) return;
  el.hidden = state == null;
  el.textContent = state || '';
  el.dataset.state = state || '';
  el.title = state === 'live' ? 'Changes by others appear as they happen'
    : 'Not connected: changes by others do not appear until the connection is back';
}

/** `entry(e)` runs for every activity entry; `reset()` after a restore. */
export function liveHandlers({ entry, reset }) {
  onEntry = entry;
  onReset = reset;
}

/** Connects (once) while there is a session; disconnects without one. */
export function liveSync() {
  if (!session.token) { stop(); return; }
  if (source || retry) return;
  connect();
}

function stop() {
  clearTimeout(retry);
  retry = null;
  if (source) source.close();
  source = null;
  lastId = '';
  indicator(null);
}

function connect() {
  retry = null;
  const q = new URLSearchParams({ token: session.token });
  // A fresh EventSource has no Last-Event-ID of its own: say where we were.
  if (lastId) q.set('lastEventId', lastId);
  const es = new EventSource(`/api/events/stream?${q}`);
  source = es;
  indicator('reconnecting');
  es.onopen = () => { backoff = 1000; indicator('live'); };
  es.onmessage = (ev) => {
    if (ev.lastEventId) lastId = ev.lastEventId;
    let e;
    try { e = JSON.parse(ev.data); } catch { return; }
    onEntry(e);
  };
  es.addEventListener('reset', (ev) => {
    if (ev.lastEventId) lastId = ev.lastEventId;
    onReset();
  });
  es.onerror = () => {
    indicator('reconnecting');
    // The browser retries by itself after a network error; after a refusal
    // (401, 429, 503) it gives up, and we retry with a growing wait.
    if (es.readyState === EventSource.CLOSED && source === es) {
      source = null;
      if (!session.token) return;
      retry = setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
    }
  };
}

/** Whether entry `e` changes what the page `route` shows. */
export function concerns(route, e) {
  switch (route.name) {
    case 'groups': return e.entity === 'Group' || e.event_type === 'created' || e.event_type === 'deleted';
    case 'group': return e.group_id === route.id;
    case 'task': return e.task_id === route.id || (e.entity === 'Group' && e.event_type === 'deleted');
    default: return false;
  }
}
