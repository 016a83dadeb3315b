// @2bad/bitrix (got 11) against sonet_group.user.get. Its queue allows two
// requests a second: keep this suite small.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitrix } from '@2bad/bitrix';
import { fixture } from './fixture.mjs';

const bx = fixture.bitrix24;
const webhook = Bitrix(`${fixture.url}/rest/${bx.userSeq}/${bx.secret}`);

test('webhook: the group members with their roles', async () => {
  const body = await webhook.call('sonet_group.user.get', { ID: bx.groupId });
  assert.deepEqual(body.result, bx.result);
  assert.equal(typeof body.time.operating, 'number');
});

test('webhook: a bad ID is an HTTPError carrying the Bitrix24 body', async () => {
  await assert.rejects(webhook.call('sonet_group.user.get', { ID: 'abc' }), (err) => {
    assert.equal(err.response.statusCode, 400);
    assert.deepEqual(err.response.body, { error: '', error_description: 'Wrong socialnetwork group ID' });
    return true;
  });
});

// The library means to append access_token= in a beforeRequest hook that
// edits options.path; under got 11 options carries a URL and no path, so the
// hook does nothing and the call goes out without a token.
test('access token: the hook adds nothing under got 11', async () => {
  const oauth = Bitrix(`${fixture.url}/rest`, bx.token);
  await assert.rejects(oauth.call('sonet_group.user.get', { ID: bx.groupId }), (err) => {
    assert.equal(err.response.statusCode, 401);
    assert.equal(err.response.body.error, 'NO_AUTH_FOUND');
    return true;
  });
  // Passing the token as a parameter works.
  const body = await oauth.call('sonet_group.user.get', { ID: bx.groupId, access_token: bx.token });
  assert.deepEqual(body.result, bx.result);
});
