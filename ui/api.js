// The one way the UI talks to the server. The bearer token lives in sessionStorage:
// per tab, gone when the tab closes, and never sent automatically like a cookie,
// so no CSRF exposure.
import { errorMessage } from './logic.js';

const TOKEN = 'taskledger.token';
const USER = 'taskledger.user';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get user() {
    try { return JSON.parse(sessionStorage.getItem(USER)); } catch { return null; }
  },
  get isAdmin() { return this.user?.role === 'admin'; },
  save(token, user) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(USER, JSON.stringify(user));
  },
  clear() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(USER);
  },
};

// Set by app.js: what to do when the server says the token is no longer good.
let onExpired = () => {};
export function whenSessionExpires(fn) { onExpired = fn; }

/**
 * Calls the API and returns the parsed JSON body. Throws ApiError carrying the
 * server's own message. `raw` sends a Blob/File body as is (backup upload);
 * `blob` returns the body as a Blob (backup download).
 */
export async function api(method, path, { json, raw, blob = false } = {}) {
  const headers = {};
  const sent = session.token;
  if (sent) headers.Authorization = `Bearer ${sent}`;
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (raw !== undefined) {
    headers['Content-Type'] = 'application/gzip';
    body = raw;
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body });
  } catch (e) {
    throw new ApiError(0, errorMessage(0, null));
  }
  if (res.ok && blob) return res.blob();
  const type = res.headers.get('Content-Type') || '';
  const data = type.includes('application/json')
    ? await res.json().catch(() => null)
    : await res.text().catch(() => '');
  if (!res.ok) {
    // The login form's own 401 is a wrong password, not an expired session.
    const err = new ApiError(res.status, errorMessage(res.status, data));
    // A token this tab has since let go of (a logout while a live-update redraw
    // was in flight) is not an expired session.
    if (res.status === 401 && path !== '/api/auth/login' && sent && session.token === sent) {
      session.clear();
      err.expired = true;
      onExpired(err.message);
    }
    throw err;
  }
  return data;
}
