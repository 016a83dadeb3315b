// @bitrix24/b24jssdk against sonet_group.user.get. B24Hook always builds an
// https URL; an axios interceptor turns it back to the loopback http server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { B24Hook, ApiVersion } from '@bitrix24/b24jssdk';
import { fixture } from './fixture.mjs';

const bx = fixture.bitrix24;

function hook(secret, rewrite = (url) => url) {
  const b24 = new B24Hook({ b24Url: fixture.url, userId: bx.userSeq, secret });
  b24.offClientSideWarning();
  b24.getHttpClient(ApiVersion.v2).ajaxClient.interceptors.request.use((c) => ({
    ...c,
    baseURL: c.baseURL?.replace(/^https:/, 'http:'),
    url: rewrite(c.url?.replace(/^https:/, 'http:')),
  }));
  return b24;
}

const call = (b24) => b24.actions.v2.call.make({ method: 'sonet_group.user.get', params: { ID: bx.groupId } });

test('webhook: the group members with their roles', async () => {
  const res = await call(hook(bx.secret));
  assert.equal(res.isSuccess, true, res.getErrorMessages().join('; '));
  assert.deepEqual(res.getData().result, bx.result);
});

// A system error rejects with the SDK's AjaxError carrying code and text.
const rejectsWith = (promise, code, message) =>
  assert.rejects(promise, (err) => {
    assert.equal(err.name, 'AjaxError');
    assert.equal(err.code, code);
    assert.equal(err.message, message);
    return true;
  });

test('webhook with a wrong secret: INVALID_CREDENTIALS', async () => {
  await rejectsWith(call(hook('wrong-secret')), 'INVALID_CREDENTIALS', 'Invalid request credentials');
});

test('no credentials at all: NO_AUTH_FOUND', async () => {
  // Drop /{userId}/{secret} from the path: an OAuth-form call with no token.
  const noAuth = hook(bx.secret, (url) => url?.replace(`/rest/${bx.userSeq}/${bx.secret}/`, '/rest/'));
  await rejectsWith(call(noAuth), 'NO_AUTH_FOUND', 'Wrong authorization data');
});

// Bitrix24 sends method errors with "error":"" (as the vendor page shows);
// the SDK then falls back to axios's code and drops the description.
test('a method error with an empty code', async () => {
  const b24 = hook(bx.secret);
  await rejectsWith(b24.actions.v2.call.make({ method: 'sonet_group.user.get', params: { ID: 'abc' } }),
    'ERR_BAD_REQUEST', 'Request failed with status code 400');
});
