// Display names of groups and users, read through the REST API when the
// token has the membership:read scope. Without it, ids stand for names.

import { eachPage, get } from "./api.js";

const MAX_GROUP_PAGES = 20; // 20 000 groups; the rest show their ids
// Lookups per sign-in, members beyond show their ids: fewer than the
// broker's default REST burst per token (200), so that names never crowd
// out the calls the pages need.
const MAX_USER_LOOKUPS = 150;
const USER_CONCURRENCY = 2;

/** Names of every group, loaded once after sign-in. */
export class GroupNames {
  #names = new Map();
  #listeners = new Set();

  /** Loads the names; resolves when done (or failed: ids then remain). */
  async load(token, enabled) {
    if (!enabled) return;
    try {
      await eachPage("groups", token, (items) => {
        for (const g of items) if (g.name) this.#names.set(g.id, g.name);
        this.#changed();
      }, { maxPages: MAX_GROUP_PAGES });
    } catch {
      // Names are a nicety: keep the ids.
    }
  }

  /** Records the name of one group (from GET /v1/groups/{id}). */
  set(id, name) {
    if (!name || this.#names.get(id) === name) return;
    this.#names.set(id, name);
    this.#changed();
  }

  get(id) {
    return this.#names.get(id) ?? id;
  }

  onChange(fn) {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #changed() {
    for (const fn of this.#listeners) fn();
  }
}

/** Names of users, looked up one by one as pages need them, a few at a
 * time and a bounded number per sign-in. */
export class UserNames {
  #token;
  #enabled;
  #names = new Map(); // id -> name ("" when the user has none)
  #queue = [];
  #queued = new Set();
  #running = 0;
  #lookups = 0;
  #listeners = new Set();

  constructor(token, enabled) {
    this.#token = token;
    this.#enabled = enabled;
  }

  /** The user's name, "" when unknown (yet). */
  get(id) {
    return this.#names.get(id) ?? "";
  }

  /** Asks for the names of ids not known yet. */
  need(ids) {
    if (!this.#enabled) return;
    for (const id of ids) {
      if (this.#names.has(id) || this.#queued.has(id)) continue;
      if (this.#lookups + this.#queue.length >= MAX_USER_LOOKUPS) break;
      this.#queued.add(id);
      this.#queue.push(id);
    }
    while (this.#running < USER_CONCURRENCY && this.#queue.length > 0) this.#next();
  }

  onChange(fn) {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  async #next() {
    const id = this.#queue.shift();
    this.#running++;
    this.#lookups++;
    try {
      const u = await get("users/" + encodeURIComponent(id), this.#token);
      this.#names.set(id, u.name || u.username || "");
    } catch {
      this.#names.set(id, "");
    } finally {
      this.#queued.delete(id);
      this.#running--;
    }
    for (const fn of this.#listeners) fn();
    if (this.#queue.length > 0) this.#next();
  }
}
