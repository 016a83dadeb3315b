// CometChat has no usable REST client library: plain fetch, as its docs'
// own examples do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture } from './fixture.mjs';

const cc = fixture.cometchat;
const members = async (query = '', key = cc.apiKey) => {
  const headers = { accept: 'application/json' };
  if (key) headers.apiKey = key;
  const res = await fetch(`${fixture.url}/v3/groups/${cc.guid}/members${query}`, { headers });
  return { status: res.status, body: await res.json() };
};

test('lists members with scopes and presence', async () => {
  const { status, body } = await members();
  assert.equal(status, 200);
  assert.deepEqual(body.data.map((m) => m.uid), cc.uids);
  assert.deepEqual(body.data.map((m) => m.scope), ['admin', 'moderator', 'participant']);
  assert.deepEqual(body.meta.pagination, { total: 3, count: 3, per_page: 100, current_page: 1, total_pages: 1 });
  assert.equal(body.cursor.affix, 'prepend');
});

test('filters by status and scopes, and pages', async () => {
  let { body } = await members('?status=available');
  assert.deepEqual(body.data.map((m) => m.uid), cc.available);
  ({ body } = await members('?scopes=admin,participant'));
  assert.deepEqual(body.data.map((m) => m.scope), ['admin', 'participant']);
  ({ body } = await members('?perPage=2&page=2'));
  assert.deepEqual(body.data.map((m) => m.uid), cc.uids.slice(2));
  assert.equal(body.meta.pagination.total_pages, 2);
});

test('errors in the CometChat envelope', async () => {
  const cases = [
    ['', '', 401, 'AUTH_ERR_EMPTY_APIKEY'],
    ['', 'pd_not_a_key', 401, 'AUTH_ERR_APIKEY_NOT_FOUND'],
    ['', cc.authOnlyKey, 403, 'AUTH_ERR_NO_ACCESS'],
    ['?perPage=0', cc.apiKey, 400, 'ERR_BAD_REQUEST'],
  ];
  for (const [query, key, status, code] of cases) {
    const r = await members(query, key);
    assert.equal(r.status, status, code);
    assert.equal(r.body.error.code, code);
    assert.equal(r.body.error.source, 'chat-api');
  }
  const res = await fetch(`${fixture.url}/v3/groups/nope/members`, { headers: { apikey: cc.apiKey } });
  assert.equal(res.status, 404);
  assert.equal((await res.json()).error.code, 'ERR_GUID_NOT_FOUND');
});
