// Time travel in the UI (SPEC §7, §10): a group or a task as it was at an earlier
// time or log entry, read-only, and the per-entry actions of the activity panel
// ("view as of here"; for admins, "restore to this point").
import { api, session } from './api.js';
import { h, field, time, notify, busy, confirmDialog, showError } from './dom.js';
import { groupByStatus, pastPath, atFromInput } from './logic.js';

const link = (href, text) => h('a', { href }, text);

/** Controls for one activity entry: always "view as of here"; "restore to this
 *  point" for admins (a point-in-time restore of the live log, confirmed first). */
export function entryActions(kind, id, ctx) {
  return (entry) => {
    const view = link(pastPath(kind, id, entry.id), 'View as of here');
    if (!session.isAdmin) return h('div', { class: 'entry-actions small' }, view);
    const restore = h('button', { type: 'button', class: 'inline-action danger' }, 'Restore to this point');
    restore.onclick = async () => {
      const ok = await confirmDialog('Restore everything to this point?',
        `All data goes back to how it was right after “${entry.changes}” (event ${entry.id}, ${new Date(entry.timestamp).toLocaleString()}). `
        + 'Everything after it is undone for every group; a pre-restore backup keeps the current state.',
        'Restore to this point');
      if (!ok) return;
      try {
        const res = await busy(restore, 'Restoring…', () => api('POST', '/api/backup/restore', { json: { at: entry.id } }));
        notify(`Restored to event ${res.lastEventId} (${res.restored.groups} groups, ${res.restored.tasks} tasks). The previous state is saved as ${res.safetyBackup}.`);
        await ctx.refresh();
      } catch (e) { showError(e); }
    };
    return h('div', { class: 'entry-actions small' }, view, ' · ', restore);
  };
}

/** "See it at …": a time picker that opens the past view. */
export function timePicker(kind, id, ctx) {
  const at = h('input', { type: 'datetime-local', name: 'at', step: 1, required: true });
  return h('form', {
    class: 'card row wrap time-picker',
    onsubmit: (ev) => {
      ev.preventDefault();
      const t = atFromInput(at.value);
      if (!t) { notify('Pick a date and time.', 'error'); return; }
      ctx.navigate(pastPath(kind, id, t));
    },
  }, field(`See this ${kind} as it was at`, at), h('button', { type: 'submit' }, 'Show'));
}

function banner(kind, id, at) {
  return h('p', { class: 'notice past', role: 'status' },
    `You are looking at this ${kind} as it was at `, h('strong', {}, describeAt(at)),
    '. Nothing here can be changed. ', link(`/${kind}s/${encodeURIComponent(id)}`, `Back to the ${kind} now`));
}

function describeAt(at) {
  return /^\d+$/.test(at) ? `event ${at}` : new Date(at).toLocaleString();
}

export async function groupAtView(ctx) {
  const { id, at } = ctx.params;
  const { group: g } = await api('GET', `/api/groups/${encodeURIComponent(id)}?at=${encodeURIComponent(at)}`);
  const board = groupByStatus(g.tasks).map(({ status, tasks }) => h('section', { class: 'column', 'data-status': status },
    h('h3', {}, status, ' ', h('span', { class: 'count' }, `(${tasks.length})`)),
    tasks.length ? h('ul', { class: 'plain stack' }, tasks.map((t) => h('li', { class: 'card task', 'data-task': t.name },
      h('h4', {}, link(pastPath('task', t._id, at), t.name)),
      t.description ? h('p', { class: 'small clamp' }, t.description) : null,
      h('p', { class: 'muted small' }, `${t.commentCount} comment(s) · `, t.status))))
      : h('p', { class: 'muted small' }, 'None')));
  return h('div', { class: 'page past-view' },
    h('p', { class: 'crumbs' }, link('/', 'Groups'), ' / ', link(`/groups/${encodeURIComponent(id)}`, g.name), ' / '),
    h('h1', { tabindex: -1 }, `${g.name} `, h('span', { class: 'tag' }, 'past')),
    banner('group', id, at),
    g.discussion ? h('p', { class: 'discussion' }, g.discussion) : null,
    h('div', { class: 'board', role: 'region', 'aria-label': 'Tasks by status, then' }, board),
    timePicker('group', id, ctx));
}

export async function taskAtView(ctx) {
  const { id, at } = ctx.params;
  const { task: t } = await api('GET', `/api/tasks/${encodeURIComponent(id)}?at=${encodeURIComponent(at)}`);
  return h('div', { class: 'page past-view' },
    h('p', { class: 'crumbs' }, link('/', 'Groups'), ' / ', link(pastPath('group', t.groupId, at), 'Group then'), ' / '),
    h('h1', { tabindex: -1 }, `${t.name} `, h('span', { class: 'tag' }, 'past')),
    banner('task', id, at),
    h('section', { class: 'card stack', 'aria-label': 'Details then' },
      h('dl', { class: 'facts' },
        h('dt', {}, 'Status'), h('dd', {}, t.status),
        h('dt', {}, 'Start'), h('dd', {}, t.startDate || '–'),
        h('dt', {}, 'End'), h('dd', {}, t.endDate || '–'),
        h('dt', {}, 'Updated'), h('dd', {}, time(t.updatedAt))),
      t.description ? h('p', { class: 'prewrap' }, t.description) : h('p', { class: 'muted' }, 'No description.')),
    h('section', { class: 'card stack', 'aria-labelledby': 'comments-then' },
      h('h2', { id: 'comments-then' }, `Comments then (${t.comments.length})`),
      t.comments.length ? h('ol', { class: 'plain stack comments' }, t.comments.map((c) => h('li', {},
        h('p', { class: 'prewrap' }, c.text), h('p', { class: 'muted small' }, c.author, ' · ', time(c.createdAt)))))
        : h('p', { class: 'muted' }, 'No comments then.')),
    timePicker('task', id, ctx));
}
