// Groups, tasks and comments: the pages every member uses.
import { api } from './api.js';
import { h, field, time, notify, showError, confirmDialog, formDialog, statusSelect } from './dom.js';
import { groupByStatus } from './logic.js';
import { activityPanel } from './activity.js';
import { entryActions, timePicker } from './history.js';

const link = (href, text) => h('a', { href }, text);
const input = (attrs = {}) => h('input', { type: 'text', ...attrs });
const textarea = (attrs = {}) => h('textarea', { rows: 3, maxlength: 10000, ...attrs });

/** Runs a mutation from a form or button, shows its result, then redraws the page. */
async function act(ctx, work, done) {
  try {
    await work();
    if (done) notify(done);
    await ctx.refresh();
  } catch (e) {
    showError(e);
  }
}

export async function groupsView(ctx) {
  const { groups } = await api('GET', '/api/groups');
  const name = input({ name: 'name', required: true, maxlength: 200, autocomplete: 'off' });
  const discussion = textarea({ name: 'discussion' });
  const form = h('form', {
    class: 'card stack',
    onsubmit: (ev) => {
      ev.preventDefault();
      act(ctx, () => api('POST', '/api/groups', {
        json: { name: name.value, discussion: discussion.value },
      }), `Group “${name.value.trim()}” created.`);
    },
  },
  h('h2', {}, 'New group'),
  field('Group name', name),
  field('Discussion (optional)', discussion),
  h('div', {}, h('button', { type: 'submit', class: 'primary' }, 'Create group')));

  const rows = groups.map((g) => h('li', { class: 'card row', 'data-group': g.name },
    h('div', { class: 'grow' },
      h('h3', {}, link(`/groups/${encodeURIComponent(g._id)}`, g.name)),
      h('p', { class: 'muted small' },
        `${g.taskCount} ${g.taskCount === 1 ? 'task' : 'tasks'} · updated `, time(g.updatedAt))),
    h('div', { class: 'actions' },
      h('button', { type: 'button', 'aria-label': `Rename ${g.name}`, onclick: () => renameGroup(ctx, g) }, 'Rename'),
      h('button', {
        type: 'button', class: 'danger', 'aria-label': `Delete ${g.name}`, onclick: () => deleteGroup(ctx, g),
      }, 'Delete'))));

  return h('div', { class: 'page' },
    h('h1', { tabindex: -1 }, 'Groups'),
    h('div', { class: 'split' },
      h('section', { 'aria-label': 'All groups' },
        groups.length ? h('ul', { class: 'plain stack' }, rows)
          : h('p', { class: 'muted' }, 'No groups yet. Create the first one.')),
      form));
}

async function renameGroup(ctx, g) {
  const v = await formDialog(`Rename “${g.name}”`, [
    ['name', 'Group name', input({ value: g.name, required: true, maxlength: 200 })],
    ['discussion', 'Discussion', textarea({ value: g.discussion || '' })],
  ]);
  if (!v) return;
  await act(ctx, () => api('PUT', `/api/groups/${encodeURIComponent(g._id)}`, { json: v }),
    `Group renamed to “${v.name.trim()}”.`);
}

async function deleteGroup(ctx, g, after) {
  const ok = await confirmDialog('Delete group?',
    `“${g.name}” and its ${g.taskCount} task(s) and their comments will be deleted. Its activity log stays.`,
    'Delete group');
  if (!ok) return;
  try {
    await api('DELETE', `/api/groups/${encodeURIComponent(g._id)}`);
    notify(`Group “${g.name}” deleted.`);
    if (after) after(); else await ctx.refresh();
  } catch (e) {
    showError(e);
  }
}

export async function groupView(ctx) {
  const { group: g } = await api('GET', `/api/groups/${encodeURIComponent(ctx.params.id)}`);
  const activity = activityPanel('group', g._id, { entryActions: entryActions('group', g._id, ctx) });
  await activity.ready;

  const board = groupByStatus(g.tasks).map(({ status, tasks }) => {
    const id = `col-${status.replace(/\s+/g, '-').toLowerCase()}`;
    return h('section', { class: 'column', 'aria-labelledby': id, 'data-status': status },
      h('h3', { id }, status, ' ', h('span', { class: 'count' }, `(${tasks.length})`)),
      tasks.length ? h('ul', { class: 'plain stack' }, tasks.map((t) => taskCard(ctx, t)))
        : h('p', { class: 'muted small' }, 'None'));
  });

  return h('div', { class: 'page' },
    h('p', { class: 'crumbs' }, link('/', 'Groups'), ' / '),
    h('div', { class: 'title-row' },
      h('h1', { tabindex: -1 }, g.name),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => renameGroup(ctx, g) }, 'Rename group'),
        h('button', {
          type: 'button', class: 'danger', onclick: () => deleteGroup(ctx, g, () => ctx.navigate('/')),
        }, 'Delete group'))),
    g.discussion ? h('p', { class: 'discussion' }, g.discussion) : null,
    h('div', { class: 'split wide-first' },
      h('div', { class: 'stack' },
        h('div', { class: 'board', 'aria-label': 'Tasks by status', role: 'region' }, board),
        newTaskForm(ctx, g),
        timePicker('group', g._id, ctx)),
      activity));
}

function taskCard(ctx, t) {
  const select = statusSelect(t.status, {
    id: `status-${t._id}`,
    onchange: () => act(ctx, () => api('PUT', `/api/tasks/${encodeURIComponent(t._id)}/status`, {
      json: { status: select.value },
    }), `“${t.name}” is now ${select.value}.`),
  });
  return h('li', { class: 'card task', 'data-task': t.name },
    h('h4', {}, link(`/tasks/${encodeURIComponent(t._id)}`, t.name)),
    t.description ? h('p', { class: 'small clamp' }, t.description) : null,
    h('p', { class: 'muted small' }, `${t.commentCount} comment${t.commentCount === 1 ? '' : 's'}`,
      t.endDate ? ` · due ${t.endDate}` : ''),
    field(`Status of ${t.name}`, select));
}

function taskFields(t = {}) {
  return [
    ['name', 'Task name', input({ value: t.name || '', required: true, maxlength: 200 })],
    ['description', 'Description', textarea({ value: t.description || '' })],
    ['status', 'Status', statusSelect(t.status || 'New')],
    ['startDate', 'Start date', h('input', { type: 'date', value: t.startDate || '' })],
    ['endDate', 'End date', h('input', { type: 'date', value: t.endDate || '' })],
  ];
}

// Empty date inputs mean "no date", which the API spells null.
function taskBody(v) {
  return { ...v, startDate: v.startDate || null, endDate: v.endDate || null };
}

function newTaskForm(ctx, g) {
  const fields = taskFields();
  const form = h('form', {
    class: 'card stack',
    onsubmit: (ev) => {
      ev.preventDefault();
      const v = Object.fromEntries(fields.map(([n, , c]) => [n, c.value]));
      act(ctx, () => api('POST', `/api/groups/${encodeURIComponent(g._id)}/tasks`, { json: taskBody(v) }),
        `Task “${v.name.trim()}” created.`);
    },
  },
  h('h2', {}, 'New task'),
  h('div', { class: 'grid' }, fields.map(([, label, c]) => field(label, c))),
  h('div', {}, h('button', { type: 'submit', class: 'primary' }, 'Add task')));
  return form;
}

export async function taskView(ctx) {
  const { task: t } = await api('GET', `/api/tasks/${encodeURIComponent(ctx.params.id)}`);
  const [{ group }, activity] = await Promise.all([
    api('GET', `/api/groups/${encodeURIComponent(t.groupId)}`).catch(() => ({ group: null })),
    (async () => {
      const a = activityPanel('task', t._id, { entryActions: entryActions('task', t._id, ctx) });
      await a.ready;
      return a;
    })(),
  ]);
  const groupHref = `/groups/${encodeURIComponent(t.groupId)}`;
  const tpath = `/api/tasks/${encodeURIComponent(t._id)}`;

  const select = statusSelect(t.status, {
    id: `status-${t._id}`,
    onchange: () => act(ctx, () => api('PUT', `${tpath}/status`, { json: { status: select.value } }),
      `Status changed to ${select.value}.`),
  });

  const edit = async () => {
    const v = await formDialog(`Edit “${t.name}”`, taskFields(t));
    if (v) await act(ctx, () => api('PUT', tpath, { json: taskBody(v) }), 'Task saved.');
  };
  const remove = async () => {
    const ok = await confirmDialog('Delete task?',
      `“${t.name}” and its ${t.commentCount} comment(s) will be deleted. Its activity log stays.`, 'Delete task');
    if (!ok) return;
    try {
      await api('DELETE', tpath);
      notify(`Task “${t.name}” deleted.`);
      ctx.navigate(groupHref);
    } catch (e) { showError(e); }
  };

  const text = textarea({ name: 'text', required: true });
  const commentForm = h('form', {
    class: 'stack',
    onsubmit: (ev) => {
      ev.preventDefault();
      act(ctx, () => api('POST', `${tpath}/comments`, { json: { text: text.value } }), 'Comment added.');
    },
  }, field('New comment', text), h('div', {}, h('button', { type: 'submit', class: 'primary' }, 'Add comment')));

  return h('div', { class: 'page' },
    h('p', { class: 'crumbs' }, link('/', 'Groups'), ' / ', link(groupHref, group?.name || 'Group'), ' / '),
    h('div', { class: 'title-row' },
      h('h1', { tabindex: -1 }, t.name),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: edit }, 'Edit task'),
        h('button', { type: 'button', class: 'danger', onclick: remove }, 'Delete task'))),
    h('div', { class: 'split wide-first' },
      h('div', { class: 'stack' },
        h('section', { class: 'card stack', 'aria-label': 'Details' },
          field('Status', select),
          h('dl', { class: 'facts' },
            h('dt', {}, 'Start'), h('dd', {}, t.startDate || '–'),
            h('dt', {}, 'End'), h('dd', {}, t.endDate || '–'),
            h('dt', {}, 'Created'), h('dd', {}, time(t.createdAt)),
            h('dt', {}, 'Updated'), h('dd', {}, time(t.updatedAt))),
          t.description ? h('p', { class: 'prewrap' }, t.description) : h('p', { class: 'muted' }, 'No description.')),
        h('section', { class: 'card stack', 'aria-labelledby': 'comments-h' },
          h('h2', { id: 'comments-h' }, `Comments (${t.comments.length})`),
          t.comments.length ? h('ol', { class: 'plain stack comments' }, t.comments.map((c) => h('li', {},
            h('p', { class: 'prewrap' }, c.text),
            h('p', { class: 'muted small' }, c.author, ' · ', time(c.timestamp || c.createdAt)))))
            : h('p', { class: 'muted' }, 'No comments yet.'),
          commentForm),
        timePicker('task', t._id, ctx)),
      activity));
}
