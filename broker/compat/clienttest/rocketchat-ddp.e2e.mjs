// Rocket.Chat's own realtime client, @rocket.chat/ddp-client, unchanged,
// against presenced's Rocket.Chat realtime API (DDP at /websocket).
//
// Run by TestDDPRocketChatClient (broker/ddp_test.go), which starts a node,
// seeds it and writes the fixture; the name keeps it out of the directory
// run of the REST clients (node --test broker/compat/clienttest/).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DDPSDK } from '@rocket.chat/ddp-client';

const path = process.env.PRESENCED_DDP_FIXTURE;
if (!path) {
  throw new Error('PRESENCED_DDP_FIXTURE is not set: run this suite through go test ./broker/ -run TestDDPRocketChatClient');
}
const fx = JSON.parse(readFileSync(path, 'utf8'));
const { alice, bob, outsider } = fx.users;

const open = [];
after(() => {
  for (const sdk of open) {
    sdk.timeoutControl.stop();
    sdk.connection.close();
  }
});

async function connect() {
  const sdk = DDPSDK.create(fx.url);
  open.push(sdk);
  await sdk.connection.connect();
  return sdk;
}

async function loggedIn(user, token = user.token) {
  const sdk = await connect();
  await sdk.account.loginWithToken(token);
  return sdk;
}

// events collects what a stream callback receives and waits for it.
function events() {
  const got = [];
  const waiters = [];
  const cb = (...args) => {
    got.push(args);
    for (const w of [...waiters]) {
      if (w.match(args)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(args);
      }
    }
  };
  const wait = (match, what, ms = 10000) =>
    new Promise((resolve, reject) => {
      const found = got.find(match);
      if (found) return resolve(found);
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`no ${what} within ${ms} ms; got ${JSON.stringify(got)}`));
      }, ms);
      const w = {
        match,
        resolve: (args) => {
          clearTimeout(timer);
          resolve(args);
        },
      };
      waiters.push(w);
    });
  return { cb, got, wait, clear: () => got.splice(0) };
}

const presence = (username, code, text) => (args) =>
  JSON.stringify(args) === JSON.stringify([[username, code, text]]);

const loggedOut = {
  isClientSafe: true,
  error: 403,
  reason: "You've been logged out by the server. Please log in again.",
  message: "You've been logged out by the server. Please log in again. [403]",
  errorType: 'Meteor.Error',
};

test('login with a personal token and with a JWT', async () => {
  const sdk = await connect();
  const res = await sdk.account.loginWithToken(alice.token);
  assert.equal(res.id, alice.id);
  assert.equal(res.token, alice.token);
  assert.equal(res.type, 'resume');
  assert.equal(typeof res.tokenExpires.$date, 'number');
  assert.ok(res.tokenExpires.$date > Date.now());
  assert.equal(sdk.account.uid, alice.id);
  assert.equal(sdk.account.user.username, alice.username); // from the users document

  const jwt = await connect();
  const r = await jwt.account.loginWithToken(bob.jwt);
  assert.equal(r.id, bob.id);
  assert.equal(jwt.account.uid, bob.id);
});

test('a bad token, a service token and a token without connect are refused as Rocket.Chat does', async () => {
  for (const token of ['not-a-token', fx.serviceToken, fx.readToken]) {
    const sdk = await connect();
    await assert.rejects(sdk.account.loginWithToken(token), (e) => {
      assert.deepEqual({ ...e }, loggedOut);
      return true;
    });
    assert.equal(sdk.account.uid, undefined);
  }
});

test('an unknown method is a Meteor 404', async () => {
  const sdk = await loggedIn(alice);
  await assert.rejects(sdk.call('sendMessage', { rid: 'GENERAL', msg: 'hi' }), (e) => {
    assert.deepEqual(
      { ...e },
      {
        isClientSafe: true,
        error: 404,
        reason: "Method 'sendMessage' not found",
        message: "Method 'sendMessage' not found [404]",
        errorType: 'Meteor.Error',
      },
    );
    return true;
  });
});

test('malformed messages get DDP error messages', async () => {
  const ws = new WebSocket(`${fx.url.replace(/^http/, 'ws')}/websocket`);
  const msgs = [];
  let notify = () => {};
  ws.onmessage = (e) => {
    msgs.push(JSON.parse(e.data));
    notify();
  };
  const next = () =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message; got ${JSON.stringify(msgs)}`)), 10000);
      const check = () => {
        if (msgs.length) {
          clearTimeout(timer);
          resolve(msgs.shift());
        } else notify = check;
      };
      check();
    });
  await new Promise((resolve) => (ws.onopen = resolve));
  assert.deepEqual(await next(), { server_id: '0' });
  ws.send(JSON.stringify({ msg: 'connect', version: '1', support: ['1', 'pre2', 'pre1'] }));
  assert.equal((await next()).msg, 'connected');
  ws.send('{"msg":"method","method":"login"}');
  assert.deepEqual(await next(), {
    msg: 'error',
    reason: 'Malformed method invocation',
    offendingMessage: { msg: 'method', method: 'login' },
  });
  ws.send('{"msg":"subscribe","id":"1"}');
  assert.deepEqual(await next(), { msg: 'error', reason: 'Bad request', offendingMessage: { msg: 'subscribe', id: '1' } });
  ws.send('this is not JSON');
  assert.deepEqual(await next(), { msg: 'error', reason: 'Bad request' });
  ws.close();
});

test('stream user-presence and notify-logged user-status carry every change of a visible user', async () => {
  const watcher = await loggedIn(alice);
  const one = events();
  const all = events();
  await watcher.stream('user-presence', bob.id, one.cb).ready();
  await watcher.stream('notify-logged', 'user-status', all.cb).ready();

  // bob is online already (logged in by the first test).
  const b = await loggedIn(bob);
  assert.equal(await b.call('UserPresence:setDefaultStatus', 'busy'), true);
  await one.wait(presence(bob.username, 3, ''), 'bob busy');
  await b.call('setUserStatus', 'away', 'lunch');
  await one.wait(presence(bob.username, 2, 'lunch'), 'bob away at lunch');
  await all.wait(
    (args) => JSON.stringify(args) === JSON.stringify([[bob.id, bob.username, 2, 'lunch', bob.name, []]]),
    'bob away at lunch in user-status',
  );
  await b.call('UserPresence:setDefaultStatus', 'online');
  await one.wait(presence(bob.username, 1, ''), 'bob online again');
  assert.deepEqual(one.got.slice(-3), [[[bob.username, 3, '']], [[bob.username, 2, 'lunch']], [[bob.username, 1, '']]]);
});

test('a user the caller may not see sends nothing', async () => {
  const watcher = await loggedIn(alice);
  const hidden = events();
  const seen = events();
  const all = events();
  await watcher.stream('user-presence', outsider.id, hidden.cb).ready();
  await watcher.stream('user-presence', bob.id, seen.cb).ready();
  await watcher.stream('notify-logged', 'user-status', all.cb).ready();
  const o = await loggedIn(outsider);
  await o.call('UserPresence:setDefaultStatus', 'busy');
  const b = await loggedIn(bob);
  await b.call('UserPresence:setDefaultStatus', 'away');
  // bob's change comes after the outsider's on the same ordered stream.
  await seen.wait(presence(bob.username, 2, ''), 'bob away');
  await all.wait((args) => args[0][0] === bob.id && args[0][2] === 2, 'bob away in user-status');
  assert.deepEqual(hidden.got, []);
  assert.deepEqual(all.got.filter((args) => args[0][0] === outsider.id), []);
  await b.call('UserPresence:setDefaultStatus', 'online');
});

test('reconnect: after the node closes the connection, the client logs in again and resubscribes', async () => {
  const watcher = await loggedIn(alice);
  const ev = events();
  await watcher.stream('user-presence', bob.id, ev.cb).ready();
  const b = await loggedIn(bob);
  await b.call('UserPresence:setDefaultStatus', 'away');
  await ev.wait(presence(bob.username, 2, ''), 'bob away');

  // The node closes every connection: both clients reconnect.
  const reconnected = (sdk) =>
    new Promise((resolve) => {
      const states = [];
      sdk.connection.on('connection', (status) => {
        states.push(status);
        if (status === 'connected' && states.includes('disconnected')) resolve(states);
      });
    });
  const again = Promise.all([reconnected(watcher), reconnected(b)]);
  const res = await fetch(`${fx.control}/close`, { method: 'POST' });
  assert.equal(res.status, 204);
  await again;
  // A method waits behind the client's own login, and its result comes
  // after the resubscription, which went out before it.
  assert.equal(await watcher.call('UserPresence:online'), true);
  assert.equal(await b.call('UserPresence:online'), true);
  assert.equal(watcher.account.uid, alice.id);
  ev.clear();
  await b.call('setUserStatus', 'busy', 'after the reconnect');
  await ev.wait(presence(bob.username, 3, 'after the reconnect'), 'bob busy after the reconnect');
});
