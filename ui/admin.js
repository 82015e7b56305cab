// Admin pages: users, backups (with their audit trail) and server health.
// app.js keeps members out of these; the server enforces it regardless.
import { api } from './api.js';
import { h, field, time, notify, busy, confirmDialog } from './dom.js';
import { formatBytes } from './logic.js';

const table = (label, head, rows) => h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': label },
  h('table', {}, h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows)));

export async function usersView(ctx) {
  const { users } = await api('GET', '/api/auth/users');
  const username = h('input', { type: 'text', required: true, maxlength: 64, autocomplete: 'off', pattern: '\\S+' });
  const password = h('input', { type: 'password', autocomplete: 'new-password' });
  const role = h('select', {}, h('option', { value: 'member' }, 'member'), h('option', { value: 'admin' }, 'admin'));
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create user');
  // Length rules are left to the server on purpose: its message is the one shown.
  const form = h('form', {
    class: 'card stack',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const res = await busy(submit, 'Creating…', () => api('POST', '/api/auth/users', {
        json: { username: username.value, password: password.value, role: role.value },
      }));
      if (res) {
        notify(`User “${res.user.username}” created as ${res.user.role}.`);
        await ctx.refresh();
      }
    },
  },
  h('h2', {}, 'New user'),
  field('Username', username, 'No spaces, up to 64 characters.'),
  field('Password', password, 'At least 8 characters.'),
  field('Role', role),
  h('div', {}, submit));

  return h('div', { class: 'page' },
    h('h1', { tabindex: -1 }, 'Users'),
    h('div', { class: 'split wide-first' },
      table('Users', ['Username', 'Role'], users.map((u) => h('tr', {}, h('td', {}, u.username), h('td', {}, u.role)))),
      form));
}

export async function backupsView(ctx) {
  const [{ backups }, { audit }] = await Promise.all([
    api('GET', '/api/backup/list'), api('GET', '/api/backup/audit'),
  ]);

  const label = h('input', { type: 'text', maxlength: 200, autocomplete: 'off' });
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create backup');
  const createForm = h('form', {
    class: 'card stack',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const json = label.value.trim() ? { label: label.value.trim() } : {};
      const res = await busy(create, 'Creating backup…', () => api('POST', '/api/backup/create', { json }));
      if (res) { notify(`Backup ${res.backup.name} created (${res.backup.events} events).`); await ctx.refresh(); }
    },
  }, h('h2', {}, 'New backup'), field('Label (optional)', label), h('div', {}, create));

  const file = h('input', { type: 'file', accept: '.tar.gz,.gz,application/gzip', required: true });
  const upload = h('button', { type: 'submit' }, 'Upload backup');
  const uploadForm = h('form', {
    class: 'card stack',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const f = file.files[0];
      if (!f) return;
      const res = await busy(upload, `Uploading and verifying ${f.name}…`,
        () => api('POST', '/api/backup/upload', { raw: f }));
      if (res) { notify(`Uploaded and verified as ${res.backup.name}.`); await ctx.refresh(); }
    },
  }, h('h2', {}, 'Upload a backup'), field('Backup file (.tar.gz)', file), h('div', {}, upload));

  const rows = backups.map((b) => {
    const restoreBtn = h('button', { type: 'button', 'aria-label': `Restore ${b.name}` }, 'Restore');
    restoreBtn.onclick = async () => {
      const ok = await confirmDialog('Restore this backup?',
        `The live data is replaced by ${b.name} (${b.events} events). A pre-restore backup of the current state is taken first.`,
        'Restore');
      if (!ok) return;
      const res = await busy(restoreBtn, 'Restoring…', () => api('POST', '/api/backup/restore', { json: { backupName: b.name } }));
      if (res) {
        const r = res.restored || {};
        notify(`Restored: ${r.groups} groups, ${r.tasks} tasks, ${r.comments} comments. Safety backup: ${res.safetyBackup}.`);
        await ctx.refresh();
      }
    };
    const download = h('button', { type: 'button', 'aria-label': `Download ${b.name}` }, 'Download');
    download.onclick = () => busy(download, 'Downloading…', async () => {
      const blob = await api('GET', `/api/backup/download/${encodeURIComponent(b.name)}`, { blob: true });
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: b.name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    });
    const del = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${b.name}` }, 'Delete');
    del.onclick = async () => {
      if (!await confirmDialog('Delete backup?', `${b.name} will be removed from the backup folder.`, 'Delete backup')) return;
      const res = await busy(del, 'Deleting…', () => api('DELETE', `/api/backup/${encodeURIComponent(b.name)}`));
      if (res) { notify(`Backup ${b.name} deleted.`); await ctx.refresh(); }
    };
    return h('tr', { 'data-backup': b.name },
      h('td', { class: 'mono' }, b.name), h('td', {}, b.kind), h('td', {}, b.label || '–'),
      h('td', {}, time(b.created)), h('td', { class: 'num' }, formatBytes(b.size)), h('td', { class: 'num' }, b.events),
      h('td', {}, h('div', { class: 'actions nowrap' }, download, restoreBtn, del)));
  });

  const auditRows = audit.map((a) => h('tr', {},
    h('td', {}, time(a.timestamp)), h('td', {}, a.action), h('td', { class: 'mono' }, a.backup || '–'),
    h('td', {}, a.user), h('td', { class: 'mono small' }, summarize(a.details))));

  return h('div', { class: 'page' },
    h('h1', { tabindex: -1 }, 'Backups'),
    h('div', { class: 'split' }, createForm, uploadForm),
    h('section', { 'aria-labelledby': 'backups-h', class: 'stack' },
      h('h2', { id: 'backups-h' }, `Backups (${backups.length})`),
      backups.length ? table('Backups', ['Name', 'Kind', 'Label', 'Created', 'Size', 'Events', 'Actions'], rows)
        : h('p', { class: 'muted' }, 'No backups yet.')),
    h('section', { 'aria-labelledby': 'audit-h', class: 'stack' },
      h('h2', { id: 'audit-h' }, 'Audit trail'),
      audit.length ? table('Audit trail', ['When', 'Action', 'Backup', 'By', 'Details'], auditRows)
        : h('p', { class: 'muted' }, 'Nothing recorded yet.')));
}

function summarize(details) {
  if (!details || typeof details !== 'object') return details == null ? '' : String(details);
  return Object.entries(details).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
}

const yesNo = (v) => (v === true ? 'yes' : v === false ? 'no' : 'unknown');

export async function healthView(ctx) {
  const s = await api('GET', '/api/health');
  const b = s.backup || {};
  const k = s.kafka || {};
  const off = b.offsite;
  const fact = (label, value, bad) => [h('dt', {}, label), h('dd', { class: bad ? 'bad' : null }, value)];
  const refresh = h('button', { type: 'button' }, 'Refresh');
  refresh.onclick = () => busy(refresh, 'Refreshing…', () => ctx.refresh());
  return h('div', { class: 'page' },
    h('div', { class: 'title-row' }, h('h1', { tabindex: -1 }, 'Server health'), refresh),
    h('div', { class: 'cards' },
      h('section', { class: 'card', 'aria-labelledby': 'h-server' },
        h('h2', { id: 'h-server' }, 'Server'),
        h('dl', { class: 'facts' },
          fact('Status', s.message || (s.success ? 'running' : 'unknown')),
          fact('Version', s.version ?? '–'),
          fact('Events', s.events ?? '–'),
          fact('Last event id', s.lastEventId ?? '–'),
          fact('Writable', yesNo(s.writable), s.writable === false))),
      h('section', { class: 'card', 'aria-labelledby': 'h-backups' },
        h('h2', { id: 'h-backups' }, 'Backups'),
        h('dl', { class: 'facts' },
          fact('Available', yesNo(b.available), b.available === false),
          fact('Count', b.count ?? '–'),
          fact('Total size', b.totalSizeMB != null ? `${b.totalSizeMB} MB` : '–'),
          fact('Latest', b.latest ? [b.latest.name, ' (', time(b.latest.created), ')'] : 'none'))),
      off ? h('section', { class: 'card', 'aria-labelledby': 'h-offsite' },
        h('h2', { id: 'h-offsite' }, 'Off-site copies'),
        h('dl', { class: 'facts' },
          fact('Enabled', yesNo(off.enabled)),
          fact('Pending', off.pending ?? '–'),
          fact('Last copied', off.lastCopiedAt ? time(off.lastCopiedAt) : 'never'),
          fact('Last error', off.lastError || 'none', !!off.lastError))) : null,
      h('section', { class: 'card', 'aria-labelledby': 'h-kafka' },
        h('h2', { id: 'h-kafka' }, 'Kafka mirror'),
        h('dl', { class: 'facts' },
          fact('Enabled', yesNo(k.enabled)),
          fact('Connected', k.enabled ? yesNo(k.connected) : '–', k.enabled && k.connected === false),
          fact('Lag (events)', k.lag ?? '–'),
          fact('Last published event', k.lastPublishedEventId ?? '–')))));
}
