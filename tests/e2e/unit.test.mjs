// Unit tests of the UI's pure logic (ui/logic.js), no browser needed.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  STATUSES, groupByStatus, nextBefore, logUrl, errorMessage, formatBytes, parseRoute,
  pastPath, atFromInput,
} from '../../ui/logic.js';

test('groupByStatus keeps workflow order, empty columns and task order', () => {
  const tasks = [
    { name: 'a', status: 'Completed' }, { name: 'b', status: 'New' }, { name: 'c', status: 'New' },
  ];
  const cols = groupByStatus(tasks);
  assert.deepEqual(cols.map((c) => c.status), STATUSES);
  assert.deepEqual(cols[0].tasks.map((t) => t.name), ['b', 'c']);
  assert.deepEqual(cols[3].tasks.map((t) => t.name), ['a']);
  assert.equal(cols[1].tasks.length, 0);
});

test('groupByStatus gives an unknown status its own column instead of dropping tasks', () => {
  const cols = groupByStatus([{ name: 'x', status: 'Blocked' }]);
  assert.equal(cols.length, STATUSES.length + 1);
  assert.deepEqual(cols.at(-1), { status: 'Blocked', tasks: [{ name: 'x', status: 'Blocked' }] });
  assert.equal(groupByStatus(undefined).length, STATUSES.length);
});

test('nextBefore: a full page continues from its oldest id, a short page ends', () => {
  assert.equal(nextBefore([{ id: 9 }, { id: 7 }], 2), 7);
  assert.equal(nextBefore([{ id: 9 }], 2), null);
  assert.equal(nextBefore([], 2), null);
  assert.equal(nextBefore(undefined, 2), null);
});

test('logUrl encodes the id and only sends before when there is one', () => {
  assert.equal(logUrl('group', 'a/b', 20), '/api/logs/group/a%2Fb?limit=20');
  assert.equal(logUrl('task', 't1', 20, 15), '/api/logs/task/t1?limit=20&before=15');
});

test('errorMessage prefers the server words and is never empty', () => {
  assert.equal(errorMessage(400, { success: false, error: 'password must be 8–256 characters' }),
    'password must be 8–256 characters');
  assert.equal(errorMessage(502, 'Bad Gateway'), 'Bad Gateway');
  assert.match(errorMessage(500, null), /500 \(server error\)/);
  assert.match(errorMessage(418, { error: '  ' }), /418/);
  assert.match(errorMessage(0, null), /reach the server/);
});

test('formatBytes', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(2048), '2.0 KB');
  assert.equal(formatBytes(50 * 1024 * 1024), '50 MB');
  assert.equal(formatBytes(undefined), '–');
});

test('parseRoute', () => {
  assert.deepEqual(parseRoute('/'), { name: 'groups' });
  assert.deepEqual(parseRoute('/groups'), { name: 'groups' });
  assert.deepEqual(parseRoute('/groups/abc%20d'), { name: 'group', id: 'abc d' });
  assert.deepEqual(parseRoute('/tasks/t1'), { name: 'task', id: 't1' });
  assert.deepEqual(parseRoute('/backups'), { name: 'backups' });
  assert.deepEqual(parseRoute('/login'), { name: 'login' });
  assert.deepEqual(parseRoute('/nope/x/y'), { name: 'notfound' });
});

test('past views have their own routes and round-trip through pastPath', () => {
  assert.deepEqual(parseRoute('/groups/g%201/at/42'), { name: 'groupAt', id: 'g 1', at: '42' });
  assert.deepEqual(parseRoute(pastPath('task', 't/1', '2025-01-02T03:04:05.000Z')),
    { name: 'taskAt', id: 't/1', at: '2025-01-02T03:04:05.000Z' });
  assert.deepEqual(parseRoute('/groups/g/at'), { name: 'notfound' });
  assert.deepEqual(parseRoute('/groups/g/at/'), { name: 'notfound' });
  assert.deepEqual(parseRoute('/users/x/at/1'), { name: 'notfound' });
});

test('atFromInput turns a local datetime into a UTC instant, and refuses nonsense', () => {
  const iso = atFromInput('2025-06-01T12:30:00');
  assert.equal(new Date(iso).getTime(), new Date('2025-06-01T12:30:00').getTime());
  assert.match(iso, /Z$/);
  assert.equal(atFromInput(''), null);
  assert.equal(atFromInput('not a time'), null);
});
