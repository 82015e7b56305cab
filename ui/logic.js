// Pure helpers with no DOM or network, so node:test can check them directly
// (tests/e2e/unit.test.mjs).

export const STATUSES = ['New', 'Backlog', 'In Progress', 'Completed', 'Approved'];

/** Tasks bucketed by status, in workflow order; a status the UI does not know yet
 *  (a newer server) still gets a column rather than hiding its tasks. */
export function groupByStatus(tasks) {
  const buckets = new Map(STATUSES.map((s) => [s, []]));
  for (const t of tasks || []) {
    if (!buckets.has(t.status)) buckets.set(t.status, []);
    buckets.get(t.status).push(t);
  }
  return [...buckets].map(([status, items]) => ({ status, tasks: items }));
}

/** The `before` cursor for the next page of a newest-first log, or null when the
 *  page was short (so there is nothing older to ask for). */
export function nextBefore(page, limit) {
  if (!Array.isArray(page) || page.length < limit || page.length === 0) return null;
  return page[page.length - 1].id;
}

export function logUrl(kind, id, limit, before) {
  const q = new URLSearchParams({ limit: String(limit) });
  if (before != null) q.set('before', String(before));
  return `/api/logs/${kind}/${encodeURIComponent(id)}?${q}`;
}

/** The words to show for a failed call: the server's `error` field when it sent one,
 *  else something about the status, never an empty string. */
export function errorMessage(status, body) {
  if (body && typeof body === 'object' && typeof body.error === 'string' && body.error.trim()) {
    return body.error;
  }
  if (typeof body === 'string' && body.trim() && body.length < 300) return body.trim();
  if (status === 0) return 'Could not reach the server. Check your connection and try again.';
  return `The server answered ${status}${STATUS_TEXT[status] ? ` (${STATUS_TEXT[status]})` : ''}.`;
}

const STATUS_TEXT = {
  400: 'invalid input', 401: 'not logged in', 403: 'not allowed', 404: 'not found',
  409: 'conflict', 413: 'too large', 422: 'failed verification', 500: 'server error',
  502: 'bad gateway', 503: 'unavailable', 507: 'insufficient storage',
};

export function formatBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

/** Client routes. Paths rather than hashes, so they read well and the server's
 *  index.html fallback lets them be bookmarked. */
export function parseRoute(pathname) {
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { name: 'groups' };
  const [head, id] = parts;
  if (parts.length === 1 && ['login', 'users', 'backups', 'health'].includes(head)) return { name: head };
  if (parts.length === 1 && head === 'groups') return { name: 'groups' };
  if (parts.length === 2 && head === 'groups') return { name: 'group', id };
  if (parts.length === 2 && head === 'tasks') return { name: 'task', id };
  if (parts.length === 4 && parts[2] === 'at' && parts[3] && head === 'groups') return { name: 'groupAt', id, at: parts[3] };
  if (parts.length === 4 && parts[2] === 'at' && parts[3] && head === 'tasks') return { name: 'taskAt', id, at: parts[3] };
  return { name: 'notfound' };
}

export const ADMIN_ROUTES = ['users', 'backups', 'health'];

/** The address of a group's or task's past view; `at` is an event id or an RFC 3339 time. */
export function pastPath(kind, id, at) {
  return `/${kind}s/${encodeURIComponent(id)}/at/${encodeURIComponent(String(at))}`;
}

/** A `datetime-local` value (local time, no zone) as an RFC 3339 UTC instant, or
 *  null when it is empty or not a time. */
export function atFromInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}
