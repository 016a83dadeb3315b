// @rocket.chat/api-client against presenced's Rocket.Chat endpoints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RestClient } from '@rocket.chat/api-client';
import { fixture } from './fixture.mjs';

const rc = fixture.rocketchat;
const client = (id, token) =>
  new RestClient({ baseUrl: fixture.url, credentials: id ? { 'X-User-Id': id, 'X-Auth-Token': token } : undefined });
const user = client(rc.userId, rc.token);
const admin = client(rc.adminId, rc.adminToken);
const ids = (list) => list.map((u) => u._id);

// The client rejects with the fetch Response of a non-2xx answer.
async function rejection(promise) {
  try {
    await promise;
  } catch (res) {
    return { status: res.status, body: await res.json() };
  }
  assert.fail('the call succeeded');
}

test('groups.online lists the online members', async () => {
  const body = await user.get('/v1/groups.online', { _id: rc.groupId });
  assert.equal(body.success, true);
  assert.deepEqual(ids(body.online), rc.online);
});

test('users.presence with ids as an array (ids[]=) and as a comma list', async () => {
  const asked = [...rc.present, rc.offline];
  const arr = await user.get('/v1/users.presence', { ids: asked });
  assert.equal(arr.full, false);
  assert.deepEqual(ids(arr.users), rc.present);
  const comma = await user.get('/v1/users.presence', { ids: asked.join(',') });
  assert.deepEqual(ids(comma.users), rc.present);
  const full = await user.get('/v1/users.presence');
  assert.equal(full.full, true);
});

test('roles.getUsersInRole as an admin', async () => {
  const body = await admin.get('/v1/roles.getUsersInRole', { role: 'admin', count: 5 });
  assert.deepEqual(ids(body.users), [rc.adminId]);
  assert.equal(body.total, 1);
});

test('users.setStatus then users.getStatus', async () => {
  assert.equal((await user.post('/v1/users.setStatus', { status: 'away', message: 'brb' })).success, true);
  const body = await user.get('/v1/users.getStatus');
  assert.equal(body.status, 'away');
  assert.equal(body.message, 'brb');
  await user.post('/v1/users.setStatus', { status: 'online' });
});

test('401 without credentials', async () => {
  const { status, body } = await rejection(client().get('/v1/groups.online', { _id: rc.groupId }));
  assert.equal(status, 401);
  assert.equal(body.success, false);
  assert.equal(body.status, 'error');
  assert.equal(body.message, 'You must be logged in to do this.');
});

test('400 on a missing _id and on a missing role', async () => {
  let r = await rejection(user.get('/v1/groups.online', {}));
  assert.equal(r.status, 400);
  assert.deepEqual(r.body, { success: false, error: 'Invalid query' });
  r = await rejection(admin.get('/v1/roles.getUsersInRole', {}));
  assert.equal(r.status, 400);
  assert.equal(r.body.errorType, 'error-param-not-provided');
});

test('403 without access-permissions', async () => {
  const { status, body } = await rejection(user.get('/v1/roles.getUsersInRole', { role: 'admin' }));
  assert.equal(status, 403);
  assert.equal(body.error, 'User does not have the permissions required for this action [error-unauthorized]');
});
