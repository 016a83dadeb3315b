// End-to-end check of client.js against protocol/internal/fakeserver, run
// by TestNodeEndToEnd. It talks to the Go test over stdin/stdout: it prints
// one JSON line per step and waits for the test's answer line.
import assert from "node:assert/strict";
import readline from "node:readline";
import { connect, PresenceError, SUBPROTOCOL, VERSION } from "./client.mjs";

const deadline = setTimeout(() => { console.error("e2e: timed out"); process.exit(2); }, 20000);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const expectLine = async (want) => assert.equal((await lines.next()).value, want);

assert.equal(SUBPROTOCOL, "presence.v1.json");
assert.equal(VERSION, 1);

const events = [];
const waiters = [];
// waitFor resolves with the first recorded event matching pred, now or later.
const waitFor = (pred) => {
  const found = events.find(pred);
  return found ? Promise.resolve(found) : new Promise((resolve) => waiters.push({ pred, resolve }));
};

const client = await connect(process.env.PRESENCE_URL, {
  token: "t1", device: "web", client: "e2e/1", minBackoff: 1, maxBackoff: 10, requestTimeout: 5000,
});
for (const type of ["connected", "snapshot", "resumed", "delta", "counts", "subscription_ended", "disconnected", "closed"]) {
  client.on(type, (detail) => {
    const ev = { type, ...detail };
    events.push(ev);
    for (const w of [...waiters]) {
      if (w.pred(ev)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(ev); }
    }
  });
}
assert.equal(client.hello.user, "alice");
assert.equal(client.connected, true);

// Errors: from the server, and caught before sending.
await assert.rejects(client.subscribe("secret"), (e) => e instanceof PresenceError && e.code === "forbidden");
await assert.rejects(client.subscribe("nope"), (e) => e.code === "not_found");
await assert.rejects(client.subscribe("a.b"), (e) => e.code === "bad_request");
await assert.rejects(client.setStatus("dnd"), (e) => e.code === "bad_request");
await assert.rejects(client.refresh("bogus"), (e) => e.code === "unauthorized");

const snap = await client.subscribe("g1");
assert.deepEqual(snap.members.map((m) => m.user), ["u1", "u2", "u3"]);
assert.equal(snap.fresh, false);
const counts = await client.subscribeCounts("big");
assert.deepEqual(counts, { group: "big", online: 1, total: 1, rev: counts.rev });
say({ step: "subscribed" });

await expectLine("changed");
await waitFor((e) => e.type === "delta");
say({ step: "delta" });

await expectLine("disconnected");
await waitFor((e) => e.type === "resumed");
await waitFor((e) => e.type === "counts" && e.counts.some((c) => c.group === "big"));

// Requests in flight together are matched to their replies by id.
const [q1, q2, rtt] = await Promise.all([client.query(["u1"]), client.query(["u4", "u2"]), client.ping()]);
assert.deepEqual(q1.map((m) => m.user), ["u1"]);
assert.deepEqual(q2.map((m) => m.user), ["u4", "u2"]);
assert.equal(typeof rtt, "number");
await client.setStatus("busy", "In a meeting", 60);
await waitFor((e) => e.type === "delta" && e.changes.some((m) => m.user === "alice" && m.status === "busy"));

// A snapshot pushed without id (the server's store started a new epoch)
// replaces the group's state.
say({ step: "ready for a pushed snapshot" });
await expectLine("pushed");
await waitFor((e) => e.type === "snapshot" && e.fresh && e.epoch === "e9");

const result = {
  step: "done",
  members: client.members("g1"),
  counts: client.counts("g1"),
  reconnects: client.reconnects,
  events: events.map((e) => ({ type: e.type, group: e.group, fresh: e.fresh, changes: e.changes })),
};
client.close();
await waitFor((e) => e.type === "closed");
await assert.rejects(client.ping(), (e) => e.code === "closed");
say(result);
clearTimeout(deadline);
lines.return?.();
process.stdin.destroy();
