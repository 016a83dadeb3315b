// The overview page: live online counts of every group the token may see
// (watch_counts through the JavaScript client), the busiest groups, the
// broker's totals polled from GET /v1/stats, and the server's online
// history (history.js).

import { ApiError, get } from "./api.js";
import { el, formatNumber, frameScheduler, setText, show } from "./dom.js";
import { HistoryPanel } from "./history.js";

const STATS_INTERVAL = 5000; // ms between polls of /v1/stats
const BUSIEST = 10; // groups in the busiest list
const MAX_ROWS = 200; // rows of the groups table; the filter finds the rest
const STATS = ["connections", "sessions", "subscribers", "users", "groups"];

export class Overview {
  #session;
  #counts = new Map(); // group -> {group, online, total, rev}
  #rows = new Map(); // group -> <tr> of the groups table
  #visible = false;
  #statsTimer = null;
  #history;
  #dom = new AbortController(); // removes the page's DOM listeners on stop
  #render = frameScheduler(() => this.#draw());

  /** session: {token, caps, client, groupNames, onRejected}. */
  constructor(session) {
    this.#session = session;
    this.#history = new HistoryPanel(document.getElementById("overview-history"), session);
    session.client.on("counts", ({ counts }) => this.#apply(counts));
    session.groupNames.onChange(() => this.#render());
    const signal = this.#dom.signal;
    document.getElementById("group-filter").addEventListener("input", () => this.#render(), { signal });
    document.getElementById("group-sort").addEventListener("change", () => this.#render(), { signal });
  }

  /** Starts the counts watch; resolves once the first counts are in. */
  async start() {
    const counts = await this.#session.client.watchCounts([]);
    this.#counts.clear();
    this.#apply(counts);
  }

  /** Counts of group, or undefined when it is not watched. */
  counts(group) {
    return this.#counts.get(group);
  }

  enter() {
    this.#visible = true;
    show("overview-view");
    document.title = "Overview · presenced";
    this.#draw();
    const { presence } = this.#session.caps;
    show("stats", presence);
    show("stats-note", !presence);
    if (presence) this.#pollStats();
    else setText("stats-note", "Totals need an API token with the presence:read scope.");
    this.#history.show("");
  }

  leave() {
    this.#visible = false;
    show("overview-view", false);
    clearTimeout(this.#statsTimer);
    this.#statsTimer = null;
    this.#history.hide();
  }

  stop() {
    this.leave();
    this.#dom.abort();
    this.#counts.clear();
    for (const tr of this.#rows.values()) tr.remove();
    this.#rows.clear();
    for (const k of STATS) setStat(k, undefined);
  }

  #apply(counts) {
    for (const c of counts) {
      const old = this.#counts.get(c.group);
      if (old && c.rev < old.rev) continue; // an older count arriving late
      this.#counts.set(c.group, { group: c.group, online: c.online, total: c.total, rev: c.rev });
    }
    if (this.#visible) this.#render();
  }

  async #pollStats() {
    clearTimeout(this.#statsTimer);
    try {
      const st = await get("stats", this.#session.token);
      for (const k of STATS) setStat(k, st[k]);
      show("stats-error", false);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        this.#session.onRejected("The broker no longer accepts this token. Sign in again.");
        return;
      }
      setText(show("stats-error"), "Totals could not be read: " + err.message);
    }
    if (this.#visible) this.#statsTimer = setTimeout(() => this.#pollStats(), STATS_INTERVAL);
  }

  #draw() {
    if (!this.#visible) return;
    const all = [...this.#counts.values()];
    this.#drawBusiest(all);
    this.#drawTable(all);
    let online = 0;
    for (const c of all) online += c.online;
    const summary = setText("counts-summary", `${plural(all.length, "group", "groups")}, ` +
      `${plural(online, "member", "members")} online in all`);
    summary.dataset.groups = String(all.length);
  }

  #drawBusiest(all) {
    const top = all.filter((c) => c.online > 0).sort(byOnline).slice(0, BUSIEST);
    const list = document.getElementById("busiest");
    const max = top.length > 0 ? top[0].online : 1;
    list.replaceChildren(...top.map((c) => {
      const bar = el("span", { class: "bar", "aria-hidden": "true" }, el("span", { class: "fill" }));
      bar.firstChild.style.inlineSize = `${(100 * c.online) / max}%`;
      return el("li", { "data-group": c.group, "data-online": c.online },
        el("div", { class: "entry" },
          this.#groupLink(c.group),
          el("span", { class: "count" }, `${formatNumber(c.online)} online`),
          bar));
    }));
    show("busiest-empty", top.length === 0);
  }

  #drawTable(all) {
    const filter = document.getElementById("group-filter").value.trim().toLowerCase();
    const names = this.#session.groupNames;
    let rows = filter
      ? all.filter((c) => c.group.toLowerCase().includes(filter) || names.get(c.group).toLowerCase().includes(filter))
      : all;
    const matched = rows.length;
    rows.sort(document.getElementById("group-sort").value === "online" ? byOnline : byGroup);
    rows = rows.slice(0, MAX_ROWS);

    const body = document.getElementById("counts-body");
    const keep = new Set();
    for (const c of rows) {
      keep.add(c.group);
      let tr = this.#rows.get(c.group);
      if (!tr) {
        tr = el("tr", { "data-group": c.group },
          el("th", { scope: "row" }, this.#groupLink(c.group)),
          el("td", { class: "num", "data-field": "online" }),
          el("td", { class: "num", "data-field": "total" }),
          el("td", { class: "share" }, el("span", { class: "bar", "aria-hidden": "true" }, el("span", { class: "fill" }))));
        this.#rows.set(c.group, tr);
      }
      updateRow(tr, c, names.get(c.group));
      body.append(tr); // appending moves it into sorted order
    }
    for (const [group, tr] of this.#rows) {
      if (!keep.has(group)) {
        tr.remove();
        this.#rows.delete(group);
      }
    }
    show("counts-empty", matched === 0);
    setText("counts-empty", filter ? "No group matches the filter." : "No groups yet.");
    setText("counts-more", matched > rows.length
      ? `Showing ${formatNumber(rows.length)} of ${formatNumber(matched)} groups; filter to find the others.`
      : "");
  }

  #groupLink(group) {
    const name = this.#session.groupNames.get(group);
    return el("a", { href: "#/groups/" + encodeURIComponent(group), class: "group-link", "data-name": name },
      ...linkContent(group, name));
  }
}

// linkContent is a group's name, followed by its id when they differ.
function linkContent(group, name) {
  return name === group ? [name] : [name, " ", el("span", { class: "id" }, group)];
}

function updateRow(tr, c, name) {
  const before = tr.dataset.online;
  tr.dataset.online = String(c.online);
  tr.dataset.total = String(c.total);
  const link = tr.querySelector(".group-link");
  if (link.dataset.name !== name) {
    link.dataset.name = name;
    link.replaceChildren(...linkContent(c.group, name));
  }
  setText(tr.querySelector('[data-field="online"]'), formatNumber(c.online));
  setText(tr.querySelector('[data-field="total"]'), formatNumber(c.total));
  tr.querySelector(".fill").style.inlineSize = c.total > 0 ? `${(100 * c.online) / c.total}%` : "0";
  if (before !== undefined && before !== String(c.online)) {
    tr.classList.remove("changed");
    void tr.offsetWidth; // restart the highlight animation
    tr.classList.add("changed");
  }
}

function plural(n, one, many) {
  return `${formatNumber(n)} ${n === 1 ? one : many}`;
}

function setStat(name, value) {
  const dd = document.getElementById("stat-" + name);
  setText(dd, formatNumber(value));
  if (typeof value === "number") dd.dataset.value = String(value);
  else delete dd.dataset.value;
}

function byOnline(a, b) {
  return b.online - a.online || byGroup(a, b);
}

function byGroup(a, b) {
  return a.group < b.group ? -1 : a.group > b.group ? 1 : 0;
}
