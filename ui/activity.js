// The activity log beside a group or a task, read from /api/logs, newest first,
// one page at a time ("Show older" follows the `before` cursor).
import { api } from './api.js';
import { h, time, showError } from './dom.js';
import { logUrl, nextBefore } from './logic.js';

export const PAGE_SIZE = 20;

/**
 * kind: 'group' | 'task'. `entryActions(entry)` may return extra controls for an
 * entry; it is the hook the time-travel views (SPEC §7: "group as it was here",
 * "restore to this point") will plug into without changing this panel.
 */
export function activityPanel(kind, id, { entryActions = () => null } = {}) {
  const list = h('ol', { class: 'activity', 'aria-live': 'polite' });
  const more = h('button', { type: 'button', hidden: true }, 'Show older activity');
  const empty = h('p', { class: 'muted', hidden: true }, 'No activity yet.');
  let before = null;

  async function load() {
    const page = await api('GET', logUrl(kind, id, PAGE_SIZE, before));
    const logs = page.logs || [];
    for (const e of logs) {
      list.append(h('li', { 'data-log-id': e.id },
        h('div', { class: 'log-line' },
          h('span', { class: `tag ${e.event_type}` }, e.event_type.replace('_', ' ')),
          ' ', h('span', { class: 'changes' }, e.changes)),
        h('div', { class: 'muted small' }, e.user_name, ' · ', time(e.timestamp)),
        entryActions(e)));
    }
    before = nextBefore(logs, PAGE_SIZE);
    more.hidden = before == null;
    empty.hidden = list.children.length > 0;
  }

  more.addEventListener('click', async () => {
    more.disabled = true;
    try { await load(); } catch (e) { showError(e); } finally { more.disabled = false; }
  });
  const section = h('section', { class: 'panel', 'aria-labelledby': `activity-${kind}` },
    h('h2', { id: `activity-${kind}` }, 'Activity'), empty, list, more);
  // The first page loads with the view; its error is the view's error.
  section.ready = load();
  return section;
}
