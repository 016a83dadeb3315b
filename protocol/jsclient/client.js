// presenced JavaScript client, protocol v1 ("presence.v1.json").
//
// An ES module without dependencies or build step, for browsers and for
// Node 20+ (Node 22+ has a global WebSocket; on Node 20 pass one in
// options.WebSocket, e.g. from the "ws" package, or run node with
// --experimental-websocket). The broker serves this file at /v1/client.js.
// The wire format is specified in protocol/README.md of presenced.
//
// API
//
//   import { connect } from "/v1/client.js";
//   const client = await connect("wss://host/v1/ws", { token });
//   client.on("delta", ({ group, changes }) => render(group, client.members(group)));
//   const snap = await client.subscribe("g1");
//
//   connect(url, options?) -> Promise<PresenceClient>
//       Creates a client and waits for its first connection (not retried).
//   new PresenceClient(url, options?)             then  client.connect() -> Promise<hello>
//
//   options (all optional):
//     token          string, or function returning a string or a Promise of one,
//                    called before every connection attempt (a fresh token for
//                    each reconnect). Sent as the subprotocol "bearer.<token>".
//     tokenTransport "subprotocol" (default) or "query" (?token=; least safe:
//                    URLs end up in logs).
//     device         sent as ?device= (e.g. "web").
//     client         sent as ?client= (app name and version).
//     reconnect      reconnect after a lost connection (default true).
//     minBackoff     first reconnect delay step in ms (default 100).
//     maxBackoff     largest reconnect delay step in ms (default 5000). The
//                    n-th wait is random between half and all of
//                    min(minBackoff * 2^n, maxBackoff).
//     requestTimeout ms a request waits for its reply, including time spent
//                    waiting for a reconnect (default 30000).
//     connectTimeout ms for the handshake and hello (default 30000).
//     pingInterval   ms between ping requests that detect a dead connection
//                    (default 30000; 0 disables).
//     WebSocket      WebSocket constructor (default globalThis.WebSocket).
//
//   Requests (each returns a Promise; replies are matched by id):
//     subscribe(group)            -> {group, rev, epoch, fresh, online, total, members}
//     subscribeCounts(group)      -> {group, online, total, rev}
//     unsubscribe(group)          -> undefined
//     setStatus(status, text = "", expiresIn = 0 /* seconds */) -> undefined
//                                    status "" keeps the status and sets the text;
//                                    "online" clears the manual status.
//     query(users)                -> [member]
//     watchCounts(groups = [])    -> [{group, online, total, rev}]  ([] = all visible groups)
//     unwatchCounts()             -> undefined
//     ping()                      -> round trip time in ms
//     refresh(token)              -> undefined; also the token of later reconnects
//                                    (unless options.token is a function)
//     close()                     -> undefined; ends the connection for good.
//   Failed requests reject with a PresenceError whose code is a wire error
//   code (ErrorCode) or one of the client codes "closed", "connection_lost",
//   "timeout".
//
//   Local view (kept from snapshots and deltas, restored after reconnects):
//     members(group)  -> [member] sorted by user ([] if not subscribed)
//     counts(group)   -> {group, online, total, rev} or undefined
//     groups()        -> [group id]
//     hello           -> {session, user, node, expires} of the current connection
//     reconnects      -> number of successful reconnects
//     connected       -> boolean
//   A member is {user, status, text, since (unix ms), last_seen?, rev?}.
//
//   Events: the client is an EventTarget dispatching CustomEvents whose
//   detail is described below; on(type, fn) calls fn(detail) and returns a
//   function that removes the listener.
//     "connected"          {hello}                    after every (re)connection
//     "snapshot"           {group, rev, epoch, fresh, online, total, members}
//                          after subscribe, or after a reconnect whose resume
//                          could not be honoured (fresh: true)
//     "resumed"            {group, rev, epoch, online, total, changes}
//                          after a reconnect: exactly the missed changes
//     "delta"              {group, rev, online, total, changes}
//     "counts"             {counts: [{group, online, total, rev}]}
//     "subscription_ended" {group, error}             the server ended a subscription
//     "disconnected"       {code, reason}             the connection was lost
//     "closed"             {code, reason, error}      the client stopped for good
//   Views are updated before the event is dispatched.
//
//   Reconnects: after close codes 4002 and 1008, and 4001 unless
//   options.token is a function, the client stops ("closed"). Browsers do
//   not tell a refused handshake (HTTP 401) from a network failure, so such
//   attempts are retried with backoff until close() is called.

export const SUBPROTOCOL = "presence.v1.json";
export const VERSION = 1;

export const Status = Object.freeze({
  ONLINE: "online",
  AWAY: "away",
  BUSY: "busy",
  OFFLINE: "offline",
});

export const ErrorCode = Object.freeze({
  BAD_REQUEST: "bad_request",
  UNKNOWN_OP: "unknown_op",
  UNAUTHORIZED: "unauthorized",
  TOKEN_EXPIRED: "token_expired",
  FORBIDDEN: "forbidden",
  NOT_FOUND: "not_found",
  RATE_LIMITED: "rate_limited",
  TOO_MANY_SUBSCRIPTIONS: "too_many_subscriptions",
  FRAME_TOO_LARGE: "frame_too_large",
  INTERNAL: "internal",
  UNAVAILABLE: "unavailable",
});

export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY: 1008,
  FRAME_TOO_BIG: 1009,
  TOKEN_EXPIRED: 4001,
  UNAUTHORIZED: 4002,
  RATE_LIMITED: 4008,
  SLOW_CONSUMER: 4009,
  IDLE_TIMEOUT: 4010,
  PROTOCOL_ERROR: 4011,
  UNAVAILABLE: 4012,
});

/** An error from the server (code from ErrorCode) or from the client
 * ("closed", "connection_lost", "timeout"). */
export class PresenceError extends Error {
  constructor(code, message) {
    super(message ? `${code}: ${message}` : code);
    this.name = "PresenceError";
    this.code = code;
  }
}

const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const STATUSES = new Set(["", "online", "away", "busy", "offline"]);
const MAX_STATUS_TEXT = 256;
const MAX_QUERY_USERS = 1000;

/** Creates a client and resolves once its first connection is up. */
export async function connect(url, options = {}) {
  const client = new PresenceClient(url, options);
  await client.connect();
  return client;
}

export class PresenceClient extends EventTarget {
  #url;
  #opts;
  #WS;
  #token;
  #ws = null;
  #opening = null; // socket of a connection attempt in progress
  #connected = false;
  #closed = false;
  #started = false;
  #nextId = 0;
  #pending = new Map(); // id -> {frame, restore, resolve, reject, timer}
  #waiting = new Set(); // requests waiting for a connection
  #groups = new Map(); // group -> {countsOnly, rev, epoch, online, total, members: Map}
  #watch = null; // {groups} while a counts watch is active
  #hello = null;
  #reconnects = 0;
  #attempt = 0;
  #reconnectTimer = null;
  #pingTimer = null;

  constructor(url, options = {}) {
    super();
    this.#url = url;
    this.#opts = {
      tokenTransport: "subprotocol",
      reconnect: true,
      minBackoff: 100,
      maxBackoff: 5000,
      requestTimeout: 30000,
      connectTimeout: 30000,
      pingInterval: 30000,
      ...options,
    };
    this.#token = typeof options.token === "string" ? options.token : "";
    this.#WS = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WS !== "function") {
      throw new TypeError(
        "presence: no WebSocket implementation: this runtime has no global WebSocket " +
        "(Node 20 has one only with --experimental-websocket; Node 22+ has one). " +
        "Run node --experimental-websocket, or pass options.WebSocket (e.g. WebSocket from the \"ws\" package).");
    }
  }

  get hello() { return this.#hello; }
  get reconnects() { return this.#reconnects; }
  get connected() { return this.#connected; }

  /** Opens the first connection; resolves with the hello. Not retried. */
  async connect() {
    if (this.#started) throw new Error("presence: connect called twice");
    this.#started = true;
    const { ws, hello } = await this.#open();
    this.#attach(ws, hello);
    return hello;
  }

  /** Calls fn(detail) for events of type; returns a function removing it. */
  on(type, fn) {
    const listener = (ev) => fn(ev.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  async subscribe(group) {
    checkId(group, "group");
    return this.#request({ op: "subscribe", group });
  }

  async subscribeCounts(group) {
    checkId(group, "group");
    return this.#request({ op: "subscribe", group, counts_only: true });
  }

  async unsubscribe(group) {
    checkId(group, "group");
    const had = this.#groups.delete(group);
    try {
      await this.#request({ op: "unsubscribe", group });
    } catch (err) {
      // The server had already dropped it (a reconnect raced with us).
      if (!(had && err.code === ErrorCode.NOT_FOUND)) throw err;
    }
  }

  async setStatus(status, text = "", expiresIn = 0) {
    if (!STATUSES.has(status)) throw new PresenceError(ErrorCode.BAD_REQUEST, `invalid status ${JSON.stringify(status)}`);
    if (new TextEncoder().encode(text).length > MAX_STATUS_TEXT) {
      throw new PresenceError(ErrorCode.BAD_REQUEST, `text longer than ${MAX_STATUS_TEXT} bytes`);
    }
    const frame = { op: "set_status" };
    if (status) frame.status = status;
    if (text) frame.text = text;
    if (expiresIn > 0) frame.expires_in = Math.ceil(expiresIn);
    await this.#request(frame);
  }

  async query(users) {
    if (users.length === 0) return [];
    if (users.length > MAX_QUERY_USERS) throw new PresenceError(ErrorCode.BAD_REQUEST, `more than ${MAX_QUERY_USERS} users`);
    users.forEach((u) => checkId(u, "user"));
    return this.#request({ op: "query", users: [...users] });
  }

  async watchCounts(groups = []) {
    groups.forEach((g) => checkId(g, "group"));
    const frame = { op: "watch_counts" };
    if (groups.length > 0) frame.groups = [...groups];
    return this.#request(frame);
  }

  async unwatchCounts() {
    await this.#request({ op: "unwatch_counts" });
  }

  async ping() {
    const start = Date.now();
    await this.#request({ op: "ping" });
    return Date.now() - start;
  }

  async refresh(token) {
    if (!token) throw new PresenceError(ErrorCode.BAD_REQUEST, "missing token");
    await this.#request({ op: "refresh", token });
  }

  /** Ends the connection with a normal closure and stops reconnecting. */
  close() {
    if (this.#closed) return;
    const ws = this.#ws;
    this.#stop(CloseCode.NORMAL, "", null);
    if (ws) {
      try { ws.close(CloseCode.NORMAL); } catch { /* already closing */ }
    }
  }

  members(group) {
    const g = this.#groups.get(group);
    if (!g || g.countsOnly) return [];
    return sortedMembers(g.members);
  }

  counts(group) {
    const g = this.#groups.get(group);
    return g ? { group, online: g.online, total: g.total, rev: g.rev } : undefined;
  }

  groups() {
    return [...this.#groups.keys()].sort();
  }

  // ---- connection lifecycle ----

  async #currentToken() {
    const t = this.#opts.token;
    return typeof t === "function" ? (await t()) ?? "" : this.#token;
  }

  // #open makes one connection attempt and resolves with the socket and
  // its hello. Event handlers are attached by #attach.
  async #open() {
    const token = await this.#currentToken();
    const url = new URL(this.#url, globalThis.location?.href);
    if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol === "https:") url.protocol = "wss:";
    if (this.#opts.device) url.searchParams.set("device", this.#opts.device);
    if (this.#opts.client) url.searchParams.set("client", this.#opts.client);
    const protocols = [SUBPROTOCOL];
    if (token && this.#opts.tokenTransport === "query") url.searchParams.set("token", token);
    else if (token) protocols.push("bearer." + token);

    const ws = new this.#WS(url.toString(), protocols);
    this.#opening = ws;
    return new Promise((resolve, reject) => {
      const fail = (code, message) => {
        clearTimeout(timer);
        if (this.#opening === ws) this.#opening = null;
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try { ws.close(); } catch { /* not open */ }
        reject(Object.assign(new PresenceError("connection_failed", message), { closeCode: code }));
      };
      const timer = setTimeout(() => fail(0, "timed out"), this.#opts.connectTimeout);
      ws.onopen = () => {
        if (ws.protocol !== SUBPROTOCOL) fail(0, `server did not select ${SUBPROTOCOL}`);
      };
      ws.onmessage = (ev) => {
        let f;
        try { f = JSON.parse(messageText(ev.data)); } catch { f = null; }
        if (!f || f.op !== "hello" || f.v !== VERSION) {
          fail(0, `first frame is not a v${VERSION} hello`);
          return;
        }
        clearTimeout(timer);
        if (this.#opening === ws) this.#opening = null;
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        resolve({ ws, hello: { session: f.session, user: f.user, node: f.node, expires: f.expires ?? 0 } });
      };
      ws.onerror = () => {}; // onclose follows with the code
      ws.onclose = (ev) => fail(ev.code, `closed before hello (${ev.code}${ev.reason ? " " + ev.reason : ""})`);
    });
  }

  #attach(ws, hello) {
    if (this.#closed) {
      try { ws.close(CloseCode.NORMAL); } catch { /* ignore */ }
      return;
    }
    this.#ws = ws;
    this.#hello = hello;
    this.#connected = true;
    this.#attempt = 0;
    ws.onmessage = (ev) => this.#onMessage(ev.data);
    ws.onclose = (ev) => this.#onClose(ws, ev.code, ev.reason);
    ws.onerror = () => {};
    this.#emit("connected", { hello });
    this.#startPing();
    // Requests made while disconnected go out now, after the hello.
    for (const req of this.#waiting) this.#send(req);
    this.#waiting.clear();
  }

  #onClose(ws, code, reason) {
    if (ws !== this.#ws) return;
    this.#ws = null;
    this.#connected = false;
    this.#stopPing();
    for (const req of this.#pending.values()) {
      clearTimeout(req.timer);
      if (!req.restore) req.reject(new PresenceError("connection_lost", `connection closed (${code})`));
    }
    this.#pending.clear();
    if (this.#closed) return;
    this.#emit("disconnected", { code, reason });
    if (!this.#opts.reconnect || this.#permanent(code)) {
      this.#stop(code, reason, new PresenceError("closed", `connection closed (${code}${reason ? " " + reason : ""})`));
      return;
    }
    this.#scheduleReconnect();
  }

  #permanent(code) {
    if (code === CloseCode.TOKEN_EXPIRED) return typeof this.#opts.token !== "function";
    return code === CloseCode.UNAUTHORIZED || code === CloseCode.POLICY;
  }

  #scheduleReconnect() {
    const step = Math.min(this.#opts.minBackoff * 2 ** Math.min(this.#attempt, 30), this.#opts.maxBackoff);
    const delay = step / 2 + Math.random() * (step / 2);
    this.#attempt++;
    this.#reconnectTimer = setTimeout(async () => {
      this.#reconnectTimer = null;
      let conn;
      try {
        conn = await this.#open();
      } catch {
        if (!this.#closed) this.#scheduleReconnect();
        return;
      }
      if (this.#closed) {
        try { conn.ws.close(CloseCode.NORMAL); } catch { /* ignore */ }
        return;
      }
      this.#reconnects++;
      this.#attach(conn.ws, conn.hello);
      this.#restore();
    }, delay);
  }

  // #restore re-subscribes every group from its last revision and renews
  // the counts watch; replies are handled like any other.
  #restore() {
    for (const [group, g] of this.#groups) {
      const frame = { op: "subscribe", group };
      if (g.countsOnly) frame.counts_only = true;
      else if (g.rev) Object.assign(frame, { rev: g.rev, epoch: g.epoch });
      this.#send({ frame, restore: true });
    }
    if (this.#watch) {
      const frame = { op: "watch_counts" };
      if (this.#watch.groups.length > 0) frame.groups = this.#watch.groups;
      this.#send({ frame, restore: true });
    }
  }

  #stop(code, reason, error) {
    if (this.#closed) return;
    this.#closed = true;
    this.#connected = false;
    this.#ws = null;
    this.#stopPing();
    clearTimeout(this.#reconnectTimer);
    if (this.#opening) {
      try { this.#opening.close(); } catch { /* not open yet */ }
    }
    const err = new PresenceError("closed", "client closed");
    for (const req of [...this.#pending.values(), ...this.#waiting]) {
      clearTimeout(req.timer);
      if (!req.restore) req.reject(err);
    }
    this.#pending.clear();
    this.#waiting.clear();
    this.#emit("closed", { code, reason, error });
  }

  #startPing() {
    if (!(this.#opts.pingInterval > 0)) return;
    this.#pingTimer = setInterval(() => {
      this.#request({ op: "ping" }, this.#opts.pingInterval).catch((err) => {
        const ws = this.#ws;
        if (err.code === "timeout" && ws) {
          // A dead network may never deliver the close: give up on it now.
          ws.onmessage = ws.onclose = null;
          try { ws.close(CloseCode.NORMAL); } catch { /* ignore */ }
          this.#onClose(ws, 1006, "ping timeout");
        }
      });
    }, this.#opts.pingInterval);
  }

  #stopPing() {
    clearInterval(this.#pingTimer);
    this.#pingTimer = null;
  }

  // ---- requests ----

  #request(frame, timeout = this.#opts.requestTimeout) {
    if (this.#closed) return Promise.reject(new PresenceError("closed", "client closed"));
    return new Promise((resolve, reject) => {
      const req = { frame, restore: false, resolve, reject, timer: null };
      req.timer = setTimeout(() => {
        this.#waiting.delete(req);
        if (req.frame.id !== undefined) this.#pending.delete(req.frame.id);
        reject(new PresenceError("timeout", `no reply to ${frame.op} within ${timeout} ms`));
      }, timeout);
      if (this.#connected) this.#send(req);
      else this.#waiting.add(req);
    });
  }

  #send(req) {
    req.frame.id = ++this.#nextId;
    this.#pending.set(req.frame.id, req);
    try {
      this.#ws.send(JSON.stringify(req.frame));
    } catch (err) {
      this.#pending.delete(req.frame.id);
      clearTimeout(req.timer);
      if (!req.restore) req.reject(new PresenceError("connection_lost", String(err)));
    }
  }

  // ---- frames ----

  #onMessage(data) {
    let f;
    try { f = JSON.parse(messageText(data)); } catch { return; }
    if (!f || typeof f.op !== "string") return;
    if (f.id) {
      const req = this.#pending.get(f.id);
      if (!req) return;
      this.#pending.delete(f.id);
      clearTimeout(req.timer);
      let result;
      try {
        result = this.#reply(req, f);
      } catch (err) {
        if (!req.restore) req.reject(err);
        return;
      }
      if (!req.restore) req.resolve(result);
      return;
    }
    switch (f.op) {
      case "delta": this.#applyDelta(f); break;
      case "counts": this.#applyCounts(f); break;
      case "snapshot": { // pushed: the group's revisions started over
        const g = this.#groups.get(f.group);
        if (g && !g.countsOnly) this.#applySnapshot({ restore: true }, f);
        break;
      }
      case "error":
        if (f.group) this.#endSubscription(f.group, new PresenceError(f.code, f.message));
        break;
    }
  }

  // #reply handles the reply to req and returns the request's result, or
  // throws its error.
  #reply(req, f) {
    const { frame } = req;
    if (f.op === "error") {
      const err = new PresenceError(f.code, f.message);
      if (req.restore && frame.op === "subscribe") this.#endSubscription(frame.group, err);
      if (req.restore && frame.op === "watch_counts") this.#watch = null;
      throw err;
    }
    const expected = {
      subscribe: ["snapshot", "resumed", "counts"], unsubscribe: ["ok"], set_status: ["ok"],
      query: ["statuses"], watch_counts: ["counts"], unwatch_counts: ["ok"], ping: ["pong"], refresh: ["ok"],
    }[frame.op];
    if (!expected.includes(f.op)) throw new PresenceError("unexpected_reply", `${f.op} to ${frame.op}`);
    switch (frame.op) {
      case "subscribe":
        if (f.op === "snapshot") return this.#applySnapshot(req, f);
        if (f.op === "resumed") return this.#applyResumed(f);
        return this.#applySubscribeCounts(req, f);
      case "query":
        return f.users ?? [];
      case "watch_counts":
        this.#watch = { groups: frame.groups ?? [] };
        this.#emit("counts", { counts: f.groups ?? [] });
        return f.groups ?? [];
      case "unwatch_counts":
        this.#watch = null;
        return undefined;
      case "refresh":
        this.#token = frame.token;
        return undefined;
    }
    return undefined;
  }

  #applySnapshot(req, f) {
    if (req.restore && !this.#groups.has(f.group)) return undefined; // unsubscribed meanwhile
    const g = { countsOnly: false, rev: f.rev, epoch: f.epoch, online: f.online, total: f.total, members: new Map() };
    for (const m of f.members ?? []) g.members.set(m.user, m);
    this.#groups.set(f.group, g);
    const snap = {
      group: f.group, rev: f.rev, epoch: f.epoch, fresh: !!f.fresh, online: f.online, total: f.total,
      members: sortedMembers(g.members),
    };
    this.#emit("snapshot", { ...snap, members: [...snap.members] });
    return snap;
  }

  #applyResumed(f) {
    const g = this.#groups.get(f.group);
    if (!g || g.countsOnly) return undefined;
    g.epoch = f.epoch;
    const changes = applyChanges(g, f);
    this.#emit("resumed", { group: f.group, rev: g.rev, epoch: f.epoch, online: f.online, total: f.total, changes });
    return { group: f.group, rev: g.rev, epoch: g.epoch, fresh: false, online: g.online, total: g.total,
      members: sortedMembers(g.members) };
  }

  #applySubscribeCounts(req, f) {
    const group = req.frame.group;
    const gc = (f.groups ?? []).find((c) => c.group === group) ?? { group, online: 0, total: 0, rev: 0 };
    if (!(req.restore && !this.#groups.has(group))) {
      this.#groups.set(group, { countsOnly: true, rev: gc.rev, epoch: "", online: gc.online, total: gc.total, members: null });
      this.#emit("counts", { counts: f.groups ?? [] });
    }
    return gc;
  }

  #applyDelta(f) {
    const g = this.#groups.get(f.group);
    if (!g || g.countsOnly || (f.rev && f.rev <= g.rev)) return;
    const changes = applyChanges(g, f);
    this.#emit("delta", { group: f.group, rev: f.rev, online: f.online, total: f.total, changes });
  }

  #applyCounts(f) {
    for (const c of f.groups ?? []) {
      const g = this.#groups.get(c.group);
      if (g && g.countsOnly && c.rev >= g.rev) Object.assign(g, { online: c.online, total: c.total, rev: c.rev });
    }
    this.#emit("counts", { counts: f.groups ?? [] });
  }

  #endSubscription(group, error) {
    if (this.#groups.delete(group)) this.#emit("subscription_ended", { group, error });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

// applyChanges applies the changes of a delta or resumed frame to g and
// returns those that were new: a change whose rev is not above the group's
// is a replay.
function applyChanges(g, f) {
  const base = g.rev;
  const applied = [];
  for (const m of f.changes ?? []) {
    if (m.rev && m.rev <= base) continue;
    applied.push(m);
    if (m.removed) g.members.delete(m.user);
    else g.members.set(m.user, m);
  }
  g.rev = Math.max(g.rev, f.rev ?? 0);
  g.online = f.online ?? 0;
  g.total = f.total ?? 0;
  return applied;
}

function sortedMembers(members) {
  return [...members.values()].sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
}

function checkId(id, what) {
  if (typeof id !== "string" || !ID_PATTERN.test(id)) {
    throw new PresenceError(ErrorCode.BAD_REQUEST, `invalid ${what} id ${JSON.stringify(id)}`);
  }
}

function messageText(data) {
  if (typeof data === "string") return data;
  return new TextDecoder().decode(data); // ArrayBuffer, typed array or Node Buffer
}
