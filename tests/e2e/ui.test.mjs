// End-to-end test of the web UI: the real taskledger binary on a free port with
// temporary directories, driven through Debian's headless Chromium by playwright-core.
// Any browser console error or page error fails the run, except the few that a step
// provokes on purpose (a 400 shown on screen, a 401 from a revoked token).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, copyFile, readdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const BIN = path.resolve(root, process.env.TASKLEDGER_BIN || 'target/release/taskledger');
const ARTIFACTS = path.join(here, 'artifacts');
const ADMIN_PASSWORD = 'e2e-admin-password';
const DESKTOP = { width: 1280, height: 900 };

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** A server on a fresh dir and port, or (`again`) on the dir and port of a stopped one. */
async function startServer(again) {
  const dir = again?.dir || await mkdtemp(path.join(tmpdir(), 'taskledger-ui-'));
  const port = again?.port || await freePort();
  const proc = spawn(BIN, ['serve', '--addr', `127.0.0.1:${port}`,
    '--data-dir', path.join(dir, 'data'), '--backup-dir', path.join(dir, 'backups'),
    '--restore-dir', path.join(dir, 'restore')], {
    env: {
      ...process.env, TASKLEDGER_ADMIN_PASSWORD: ADMIN_PASSWORD,
      AUTO_BACKUP_ENABLED: 'false', AUTO_RESTORE_ENABLED: 'false', KAFKA_ENABLED: 'false',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`taskledger exited ${proc.exitCode}:\n${log}`);
    try { if ((await fetch(`${base}/api/health`)).ok) return { proc, dir, port, base, log: () => log }; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGKILL');
  throw new Error(`taskledger did not start:\n${log}`);
}

let server;
let browser;
let page;
const problems = [];
let allowed = [];

/** Runs `fn` while console errors matching `pattern` are expected (and required). */
async function expectingConsoleError(pattern, fn) {
  const mark = { pattern, seen: false };
  allowed.push(mark);
  try { await fn(); } finally { allowed = allowed.filter((m) => m !== mark); }
  // The browser reports a failed response asynchronously; give it a moment.
  for (let i = 0; i < 20 && !mark.seen; i++) await page.waitForTimeout(50);
}

function watch(p) {
  if (process.env.E2E_DEBUG) {
    p.on('response', (r) => { if (r.status() >= 400) console.error(`[e2e] ${r.status()} ${r.request().method()} ${r.url()}`); });
    p.on('console', (m) => console.error(`[e2e console ${m.type()}] ${m.text()}`));
  }
  p.on('console', (m) => {
    if (m.type() !== 'error') return;
    const mark = allowed.find((a) => a.pattern.test(m.text()));
    if (mark) mark.seen = true;
    else problems.push(`console error: ${m.text()}`);
  });
  p.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
}

async function shot(name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

const notice = () => page.locator('#notice');
const heading = () => page.getByRole('heading', { level: 1 });
const dialog = () => page.getByRole('dialog');

async function login(username, password) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await heading().filter({ hasText: 'Groups' }).waitFor();
}

async function logout() {
  await page.getByRole('button', { name: 'Log out' }).click();
  await heading().filter({ hasText: 'Log in to taskledger' }).waitFor();
  await assert.doesNotReject(notice().filter({ hasText: 'You are logged out.' }).waitFor());
  assert.equal(await page.evaluate(() => sessionStorage.getItem('taskledger.token')), null);
}

async function openNav(name) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
}

test.before(async () => {
  // Fresh every run, so no screenshot of an earlier run passes for a current one.
  await rm(ARTIFACTS, { recursive: true, force: true });
  await mkdir(ARTIFACTS, { recursive: true });
  server = await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true });
  context.setDefaultTimeout(15_000);
  page = await context.newPage();
  watch(page);
});

test.after(async () => {
  await browser?.close();
  if (server) {
    server.proc.kill('SIGTERM');
    await new Promise((r) => { if (server.proc.exitCode !== null) r(); else server.proc.on('exit', r); });
    await rm(server.dir, { recursive: true, force: true });
  }
});

let failed = false;
/** A test that also fails on browser errors, and marks the run as failed so the
 *  README screenshots are only replaced after a green run. */
function step(name, fn) {
  test(name, async () => {
    try {
      await fn();
      assert.deepEqual(problems.splice(0), [], 'no browser console or page errors');
    } catch (e) {
      failed = true;
      await shot(`failed-${name.slice(0, 40).replace(/\W+/g, '-')}`).catch(() => {});
      throw e;
    }
  });
}

step('the server serves the app, its assets and keeps /api JSON 404s', async () => {
  const index = await fetch(`${server.base}/groups/some-bookmark`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  assert.equal(index.headers.get('cache-control'), 'no-cache');
  const js = await fetch(`${server.base}/app.js`);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  const api404 = await fetch(`${server.base}/api/no-such-route`);
  assert.equal(api404.status, 404);
  assert.deepEqual(await api404.json(), { success: false, error: 'route not found' });
});

step('login, groups, tasks, comments, status, activity, rename and delete', async () => {
  await page.goto(`${server.base}/`);
  await heading().filter({ hasText: 'Log in to taskledger' }).waitFor();
  await shot('login-desktop');

  // A wrong password is a 401 the login form shows in words.
  await expectingConsoleError(/status of 401/, async () => {
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('wrong-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').waitFor();
  });
  assert.match(await page.getByRole('alert').innerText(), /\w/);
  await login('admin', ADMIN_PASSWORD);

  // The skip link is the first stop for a keyboard.
  await page.reload();
  await heading().filter({ hasText: 'Groups' }).waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');

  await page.getByLabel('Group name').fill('Alpha');
  await page.getByLabel('Discussion (optional)').fill('Our first group');
  await page.getByRole('button', { name: 'Create group' }).click();
  await notice().filter({ hasText: 'Group “Alpha” created.' }).waitFor();
  const alpha = page.locator('li[data-group="Alpha"]');
  await alpha.filter({ hasText: '0 tasks' }).waitFor();
  await shot('groups-desktop');

  await alpha.getByRole('link', { name: 'Alpha' }).click();
  await heading().filter({ hasText: 'Alpha' }).waitFor();
  assert.equal(new URL(page.url()).pathname.startsWith('/groups/'), true);

  await page.getByLabel('Task name').fill('Write docs');
  await page.getByLabel('Description').fill('The README needs screenshots');
  await page.getByRole('button', { name: 'Add task' }).click();
  await page.locator('[data-status="New"] li[data-task="Write docs"]').waitFor();

  await page.getByLabel('Status of Write docs').selectOption('In Progress');
  await page.locator('[data-status="In Progress"] li[data-task="Write docs"]').waitFor();
  assert.equal(await page.locator('[data-status="New"] li').count(), 0);

  const activity = page.locator('.activity');
  await activity.getByText("Task 'Write docs' status changed from 'New' to 'In Progress'").waitFor();
  await activity.getByText("Task 'Write docs' was created").waitFor();
  await activity.getByText("Group 'Alpha' was created").waitFor();

  // The same page after a reload: client routes are bookmarkable.
  await page.reload();
  await page.locator('[data-status="In Progress"] li[data-task="Write docs"]').waitFor();

  await page.getByRole('link', { name: 'Write docs' }).click();
  await heading().filter({ hasText: 'Write docs' }).waitFor();
  await page.getByLabel('New comment').fill('First comment');
  await page.getByRole('button', { name: 'Add comment' }).click();
  await page.locator('.comments').getByText('First comment').waitFor();
  await page.locator('.activity').getByText("Comment added to task 'Write docs'").waitFor();

  await page.getByRole('button', { name: 'Edit task' }).click();
  await dialog().getByLabel('Task name').fill('Write the docs');
  await dialog().getByLabel('End date').fill('2030-01-31');
  await dialog().getByRole('button', { name: 'Save' }).click();
  await heading().filter({ hasText: 'Write the docs' }).waitFor();
  await page.getByText('2030-01-31').waitFor();
  await page.locator('.activity').getByText("Task 'Write the docs' was updated").waitFor();

  await page.locator('.crumbs').getByRole('link', { name: 'Alpha' }).click();
  await heading().filter({ hasText: 'Alpha' }).waitFor();
  await page.locator('li[data-task="Write the docs"]').waitFor();
  await shot('group-desktop');

  // A second task, deleted after a cancelled first attempt.
  await page.getByLabel('Task name').fill('Scratch');
  await page.getByRole('button', { name: 'Add task' }).click();
  await page.getByRole('link', { name: 'Scratch' }).click();
  await page.getByRole('button', { name: 'Delete task' }).click();
  await dialog().getByRole('button', { name: 'Cancel' }).click();
  await heading().filter({ hasText: 'Scratch' }).waitFor();
  await page.getByRole('button', { name: 'Delete task' }).click();
  await dialog().getByRole('button', { name: 'Delete task' }).click();
  await notice().filter({ hasText: 'Task “Scratch” deleted.' }).waitFor();
  await heading().filter({ hasText: 'Alpha' }).waitFor();
  assert.equal(await page.locator('li[data-task="Scratch"]').count(), 0);

  await page.getByRole('button', { name: 'Rename group' }).click();
  await dialog().getByLabel('Group name').fill('Alpha Two');
  await dialog().getByRole('button', { name: 'Save' }).click();
  await heading().filter({ hasText: 'Alpha Two' }).waitFor();

  await openNav('Groups');
  await page.getByLabel('Group name').fill('Temporary');
  await page.getByRole('button', { name: 'Create group' }).click();
  await page.getByRole('button', { name: 'Delete Temporary' }).click();
  await dialog().getByRole('button', { name: 'Delete group' }).click();
  await notice().filter({ hasText: 'Group “Temporary” deleted.' }).waitFor();
  await page.locator('li[data-group="Temporary"]').waitFor({ state: 'detached' });
  assert.equal(await page.locator('li[data-group="Temporary"]').count(), 0);
  await page.locator('li[data-group="Alpha Two"]').filter({ hasText: '1 task' }).waitFor();
});

step('admin: backup, change, restore brings the old state back; health', async () => {
  await openNav('Backups');
  await heading().filter({ hasText: 'Backups' }).waitFor();
  await page.getByLabel('Label (optional)').fill('before change');
  const create = page.getByRole('button', { name: 'Create backup' });
  await create.click();
  await notice().filter({ hasText: /Backup backup_.*_before-change\.tar\.gz created/ }).waitFor();
  const row = page.locator('tr[data-backup$="_before-change.tar.gz"]');
  await row.waitFor();
  await page.locator('table').getByText('BACKUP_CREATED').first().waitFor();
  await shot('backups-desktop');

  // Download goes through fetch (it needs the bearer token) and still saves a file.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    row.getByRole('button', { name: /^Download/ }).click(),
  ]);
  assert.match(download.suggestedFilename(), /_before-change\.tar\.gz$/);
  const downloaded = path.join(server.dir, 'downloaded.tar.gz');
  await download.saveAs(downloaded);

  await openNav('Groups');
  await page.getByLabel('Group name').fill('Made after the backup');
  await page.getByRole('button', { name: 'Create group' }).click();
  await page.locator('li[data-group="Made after the backup"]').waitFor();

  await openNav('Backups');
  await row.getByRole('button', { name: /^Restore/ }).click();
  await dialog().getByText('A pre-restore backup').waitFor();
  await dialog().getByRole('button', { name: 'Restore' }).click();
  await notice().filter({ hasText: /Restored: 1 groups, 1 tasks, 1 comments/ }).waitFor({ timeout: 60_000 });
  await page.locator('tr[data-backup]').filter({ hasText: 'pre-restore' }).waitFor();
  await page.locator('table').getByText('BACKUP_RESTORED').first().waitFor();

  await openNav('Groups');
  await page.locator('li[data-group="Alpha Two"]').waitFor();
  assert.equal(await page.locator('li[data-group="Made after the backup"]').count(), 0);

  await openNav('Health');
  await heading().filter({ hasText: 'Server health' }).waitFor();
  await page.getByRole('heading', { name: 'Kafka mirror' }).waitFor();
  const backups = page.locator('section').filter({ has: page.getByRole('heading', { name: 'Backups' }) });
  await backups.getByText('Count').waitFor();
  assert.match(await backups.innerText(), /Count\s+2/);
  await shot('health-desktop');

  // The downloaded file goes back up, is verified, listed, then deleted after a confirmation.
  await openNav('Backups');
  await page.getByLabel('Backup file (.tar.gz)').setInputFiles(downloaded);
  await page.getByRole('button', { name: 'Upload backup' }).click();
  await notice().filter({ hasText: /Uploaded and verified as backup_/ }).waitFor({ timeout: 60_000 });
  const uploaded = page.locator('tr[data-backup]').filter({ hasText: 'uploaded' });
  await uploaded.waitFor();
  await uploaded.getByRole('button', { name: /^Delete/ }).click();
  await dialog().getByRole('button', { name: 'Delete backup' }).click();
  await notice().filter({ hasText: /Backup backup_.* deleted\./ }).waitFor();
  // The notice comes first, the list is redrawn right after it.
  await uploaded.waitFor({ state: 'detached' });
  assert.equal(await page.locator('tr[data-backup]').filter({ hasText: 'uploaded' }).count(), 0);
  await page.locator('table').getByText('BACKUP_DELETED').first().waitFor();
});

step('admin: users; an API error in words; a member sees no admin pages; logout', async () => {
  await openNav('Users');
  await heading().filter({ hasText: 'Users' }).waitFor();
  await page.getByLabel('Username').fill('bob');
  await page.getByLabel('Password').fill('short');
  await expectingConsoleError(/status of 400/, async () => {
    await page.getByRole('button', { name: 'Create user' }).click();
    await notice().filter({ hasText: 'password must be 8-256 characters' }).waitFor();
  });
  assert.match(await page.getByRole('alert').innerText(), /^password must be 8-256 characters/);
  await page.getByLabel('Password').fill('bob-password-1');
  await page.getByRole('button', { name: 'Create user' }).click();
  await notice().filter({ hasText: 'User “bob” created as member.' }).waitFor();
  await page.getByRole('cell', { name: 'bob', exact: true }).waitFor();
  await shot('users-desktop');

  await logout();
  await login('bob', 'bob-password-1');
  const nav = page.getByRole('navigation', { name: 'Main' });
  assert.equal(await nav.getByRole('link').count(), 1, 'a member sees only Groups');
  await page.locator('li[data-group="Alpha Two"]').waitFor();
  for (const p of ['/backups', '/users', '/health']) {
    await page.goto(`${server.base}${p}`);
    await heading().filter({ hasText: 'Admins only' }).waitFor();
  }

  // A token the server no longer accepts sends the person back to the login page.
  await page.evaluate(() => sessionStorage.setItem('taskledger.token', 'revoked'));
  await expectingConsoleError(/status of 401/, async () => {
    await page.goto(`${server.base}/`);
    await heading().filter({ hasText: 'Log in to taskledger' }).waitFor();
  });
  await notice().filter({ hasText: 'Please log in again.' }).waitFor();

  await login('bob', 'bob-password-1');
  await logout();
});

step('history: a group as it was at a log entry or a time; restore to this point', async () => {
  await login('admin', ADMIN_PASSWORD);
  await page.getByLabel('Group name').fill('Oops');
  await page.getByRole('button', { name: 'Create group' }).click();
  await page.locator('li[data-group="Oops"]').waitFor();
  await page.getByRole('link', { name: 'Alpha Two' }).click();
  await heading().filter({ hasText: 'Alpha Two' }).waitFor();

  // "View as of here" on the group's first entry: its name then, no tasks yet, read-only.
  const created = page.locator('.activity li').filter({ hasText: "Group 'Alpha' was created" });
  await created.getByRole('link', { name: 'View as of here' }).click();
  await heading().filter({ hasText: /^Alpha\s+past$/ }).waitFor();
  await page.getByRole('status').filter({ hasText: 'Nothing here can be changed.' }).waitFor();
  assert.equal(await page.locator('li[data-task]').count(), 0, 'no tasks when it was created');
  assert.equal(await page.getByRole('button', { name: 'Rename group' }).count(), 0);
  await shot('group-past-desktop');

  // A time before it existed: the API's 404 is shown in words.
  await page.getByLabel('See this group as it was at').fill('2001-01-01T00:00:00');
  await expectingConsoleError(/status of 404/, async () => {
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('alert').filter({ hasText: /group did not exist at 2001-01-01/ }).waitFor();
  });
  await page.goBack();
  await page.getByRole('link', { name: 'Back to the group now' }).click();
  await heading().filter({ hasText: 'Alpha Two' }).waitFor();

  // Restore to this point (admin): everything after the entry is undone, "Oops" included.
  const renamed = page.locator('.activity li').filter({ hasText: "Group 'Alpha Two' was updated" });
  await renamed.getByRole('button', { name: 'Restore to this point' }).click();
  await dialog().getByText('a pre-restore backup keeps the current state').waitFor();
  await dialog().getByRole('button', { name: 'Restore to this point' }).click();
  await notice().filter({ hasText: /Restored to event \d+/ }).waitFor({ timeout: 60_000 });
  await openNav('Groups');
  await page.locator('li[data-group="Alpha Two"]').waitFor();
  assert.equal(await page.locator('li[data-group="Oops"]').count(), 0, 'Oops was undone');
  await logout();
});

/** The API as `token`, from the test itself (a second person's actions). */
async function apiAs(token, method, p, json) {
  const res = await fetch(`${server.base}${p}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  const body = await res.json();
  assert.ok(res.ok, `${method} ${p}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

step('live updates: another person\'s changes appear in place, typing survives, the indicator follows the connection', async () => {
  const admin = await apiAs('', 'POST', '/api/auth/login', { username: 'admin', password: ADMIN_PASSWORD });
  await apiAs(admin.token, 'POST', '/api/auth/users', { username: 'carol', password: 'carol-password-1' });

  // Page A: the admin on a board.
  await login('admin', ADMIN_PASSWORD);
  const live = page.locator('#live-indicator');
  await live.filter({ hasText: /^live$/ }).waitFor();
  await page.getByLabel('Group name').fill('Live board');
  await page.getByRole('button', { name: 'Create group' }).click();
  await page.getByRole('link', { name: 'Live board' }).click();
  await heading().filter({ hasText: 'Live board' }).waitFor();

  // Page B: Carol, in another browser context, on the same board.
  const ctxB = await browser.newContext({ viewport: DESKTOP });
  ctxB.setDefaultTimeout(15_000);
  const b = await ctxB.newPage();
  watch(b);
  await b.goto(`${server.base}/`);
  await b.getByLabel('Username').fill('carol');
  await b.getByLabel('Password').fill('carol-password-1');
  await b.getByRole('button', { name: 'Log in' }).click();
  await b.getByRole('link', { name: 'Live board' }).click();
  await b.getByRole('heading', { level: 1 }).filter({ hasText: 'Live board' }).waitFor();
  const carol = await b.evaluate(() => sessionStorage.getItem('taskledger.token'));

  // A task Carol adds appears on A's board, without a reload, within a second.
  const loads = [];
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) loads.push(f.url()); });
  await b.getByLabel('Task name').fill('From Carol');
  await b.getByRole('button', { name: 'Add task' }).click();
  await b.locator('[data-status="New"] li[data-task="From Carol"]').waitFor();
  await page.locator('[data-status="New"] li[data-task="From Carol"]').waitFor({ timeout: 1000 });
  // Her status change moves the card.
  await b.getByLabel('Status of From Carol').selectOption('In Progress');
  await b.locator('[data-status="In Progress"] li[data-task="From Carol"]').waitFor();
  await page.locator('[data-status="In Progress"] li[data-task="From Carol"]').waitFor({ timeout: 1000 });
  await page.locator('.activity li').filter({ hasText: "Task 'From Carol' was created" }).waitFor({ timeout: 1000 });

  assert.deepEqual(loads, [], 'the board changed without a page load');

  // A half-typed comment in A survives Carol's comment arriving.
  await page.getByRole('link', { name: 'From Carol' }).click();
  await heading().filter({ hasText: 'From Carol' }).waitFor();
  loads.length = 0;
  const box = page.getByLabel('New comment');
  await box.click();
  await page.keyboard.type('half typed');
  const taskId = decodeURIComponent(new URL(page.url()).pathname.split('/')[2]);
  await apiAs(carol, 'POST', `/api/tasks/${encodeURIComponent(taskId)}/comments`, { text: 'Carol says hi' });
  await page.locator('.comments li').filter({ hasText: 'Carol says hi' }).waitFor({ timeout: 1000 });
  assert.equal(await page.getByLabel('New comment').inputValue(), 'half typed');
  assert.equal(await page.evaluate(() => document.activeElement?.tagName), 'TEXTAREA', 'the comment box keeps the focus');
  await page.keyboard.type(', and more');
  assert.equal(await page.getByLabel('New comment').inputValue(), 'half typed, and more');
  assert.deepEqual(loads, [], 'no page load happened');
  await shot('live-task-desktop');

  // The server stops: "reconnecting"; it comes back on the same port and dir: "live".
  await b.close();
  await ctxB.close();
  const mark = { pattern: /ERR_CONNECTION_REFUSED|events\/stream|Failed to load resource|EventSource/, seen: false };
  allowed.push(mark);
  try {
    const old = server;
    old.proc.kill('SIGTERM');
    await new Promise((r) => { if (old.proc.exitCode !== null) r(); else old.proc.on('exit', r); });
    await live.filter({ hasText: /^reconnecting$/ }).waitFor({ timeout: 5000 });
    server = await startServer(old);
    await live.filter({ hasText: /^live$/ }).waitFor({ timeout: 15_000 });
  } finally {
    allowed = allowed.filter((m) => m !== mark);
  }
  // And still delivers: a deleted group's page says so.
  await page.getByRole('link', { name: 'Live board' }).click();
  await heading().filter({ hasText: 'Live board' }).waitFor();
  const groupId = decodeURIComponent(new URL(page.url()).pathname.split('/')[2]);
  await expectingConsoleError(/status of 404/, async () => {
    await apiAs(carol, 'DELETE', `/api/groups/${encodeURIComponent(groupId)}`);
    await notice().filter({ hasText: 'This group (“Live board”) was deleted by carol.' }).waitFor({ timeout: 2000 });
    await heading().filter({ hasText: 'Could not load this page' }).waitFor({ timeout: 2000 });
  });
  await logout();
});

step('360 px wide: no sideways scrolling, menus still reachable', async () => {
  await login('admin', ADMIN_PASSWORD);
  await page.setViewportSize({ width: 360, height: 780 });
  for (const p of ['/', '/backups']) {
    await page.goto(`${server.base}${p}`);
    await heading().waitFor();
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 360, `${p} is ${wide}px wide at a 360px viewport`);
  }
  await page.goto(`${server.base}/`);
  await page.locator('li[data-group="Alpha Two"]').waitFor();
  await shot('groups-360');
  await page.getByRole('link', { name: 'Alpha Two' }).click();
  await heading().filter({ hasText: 'Alpha Two' }).waitFor();
  await shot('group-360');
  await page.setViewportSize(DESKTOP);
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(`${server.base}/`);
  await page.locator('li[data-group="Alpha Two"]').waitFor();
  await shot('groups-dark');
  await page.emulateMedia({ colorScheme: 'light' });
  await logout();
});

test.after(async () => {
  // The README shows the screenshots of the last green run.
  if (failed || process.env.UPDATE_SCREENSHOTS === '0') return;
  const docs = path.join(root, 'docs', 'screenshots');
  await mkdir(docs, { recursive: true });
  for (const f of await readdir(ARTIFACTS)) {
    if (f.endsWith('.png')) await copyFile(path.join(ARTIFACTS, f), path.join(docs, f));
  }
});
