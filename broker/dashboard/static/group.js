// The page of one group: its members and their statuses, live, and its
// online history (history.js). It subscribes to the group through the
// JavaScript client (a snapshot, then deltas) and unsubscribes when left.

import { ApiError, eachPage, get } from "./api.js";
import { el, formatNumber, frameScheduler, setText, show, timeAgo } from "./dom.js";
import { HistoryPanel } from "./history.js";

const MAX_ROWS = 500; // member rows; the filter finds the rest
const STATUSES = ["online", "busy", "away", "offline"];
const ORDER = { online: 0, busy: 1, away: 2, offline: 3 };
const CLOCK = 30000; // ms between refreshes of "5 minutes ago"

export class GroupPage {
  #session;
  #group = ""; // the group shown, "" when the page is not
  // Every member and their role, read through the REST API (membership:read):
  // the live view holds only the members who are or were present.
  #roles = new Map(); // user -> role
  #error = "";
  #loading = false;
  #clock = null;
  #leaveController = null;
  #history;
  #dom = new AbortController(); // removes the page's DOM listeners on stop
  #render = frameScheduler(() => this.#draw());

  /** session: {token, caps, client, groupNames, userNames}. */
  constructor(session) {
    this.#session = session;
    this.#history = new HistoryPanel(document.getElementById("group-history"), session);
    const c = session.client;
    const mine = (detail) => detail.group === this.#group;
    for (const type of ["snapshot", "delta", "resumed"]) {
      c.on(type, (d) => {
        if (!mine(d)) return;
        for (const m of d.changes ?? []) if (m.removed) this.#roles.delete(m.user);
        this.#render();
      });
    }
    c.on("subscription_ended", (d) => {
      if (!mine(d)) return;
      this.#error = describe(d.error, d.group);
      this.#render();
    });
    session.userNames.onChange(() => { if (this.#group) this.#render(); });
    session.groupNames.onChange(() => { if (this.#group) this.#drawTitle(); });
    const signal = this.#dom.signal;
    document.getElementById("member-filter").addEventListener("input", () => this.#render(), { signal });
    document.getElementById("status-filter").addEventListener("change", () => this.#render(), { signal });
  }

  /** Shows group; returns once its snapshot (or an error) is shown. */
  async enter(group) {
    this.#group = group;
    this.#roles = new Map();
    this.#error = "";
    this.#loading = true;
    this.#leaveController = new AbortController();
    const signal = this.#leaveController.signal;
    document.getElementById("member-filter").value = "";
    document.getElementById("status-filter").value = "";
    document.getElementById("members-body").replaceChildren();
    show("group-view");
    this.#drawTitle();
    this.#draw();
    this.#clock = setInterval(() => this.#render(), CLOCK);
    this.#history.show(group);

    const { caps, token, client } = this.#session;
    document.getElementById("members").dataset.details = caps.membership ? "on" : "off";
    if (caps.membership) {
      this.#loadDetails(group, token, signal);
    }
    try {
      await client.subscribe(group);
    } catch (err) {
      if (this.#group !== group) return;
      this.#error = describe(err, group);
    }
    if (this.#group !== group) {
      // Left while subscribing.
      client.unsubscribe(group).catch(() => {});
      return;
    }
    this.#loading = false;
    this.#draw();
  }

  leave() {
    const group = this.#group;
    this.#group = "";
    clearInterval(this.#clock);
    this.#history.hide();
    this.#leaveController?.abort();
    show("group-view", false);
    if (group && this.#session.client.groups().includes(group)) {
      this.#session.client.unsubscribe(group).catch(() => {});
    }
  }

  /** Leaves the page and drops its listeners: the session has ended. */
  stop() {
    this.leave();
    this.#dom.abort();
  }

  async #loadDetails(group, token, signal) {
    try {
      const g = await get("groups/" + encodeURIComponent(group), token, { signal });
      this.#session.groupNames.set(g.id, g.name);
      await eachPage(`groups/${encodeURIComponent(group)}/members`, token, (items) => {
        for (const m of items) this.#roles.set(m.userId, m.role);
      }, { maxPages: 10, signal });
    } catch (err) {
      if (signal.aborted || this.#group !== group) return;
      if (err instanceof ApiError && err.status === 404) {
        this.#error = `There is no group "${group}".`;
      }
    }
    if (this.#group === group) this.#render();
  }

  #drawTitle() {
    const name = this.#session.groupNames.get(this.#group);
    setText("group-title", name);
    setText("group-id", name === this.#group ? "" : this.#group);
    document.title = `${name} · presenced`;
  }

  #draw() {
    const group = this.#group;
    if (!group) return;
    const client = this.#session.client;
    const counts = client.counts(group);
    const err = setText("group-error", this.#error);
    show(err, this.#error !== "");

    const line = document.getElementById("group-counts");
    if (counts) {
      line.dataset.online = String(counts.online);
      line.dataset.total = String(counts.total);
      setText(line, `${formatNumber(counts.online)} of ${formatNumber(counts.total)} members online`);
    } else {
      delete line.dataset.online;
      delete line.dataset.total;
      setText(line, this.#loading ? "Loading…" : "");
    }

    const live = new Map(client.members(group).map((m) => [m.user, m]));
    for (const user of this.#roles.keys()) {
      if (!live.has(user)) live.set(user, { user, status: "offline", text: "" });
    }
    const members = [...live.values()];
    const byStatus = { online: 0, busy: 0, away: 0, offline: 0 };
    for (const m of members) byStatus[m.status] = (byStatus[m.status] ?? 0) + 1;
    if (counts) byStatus.offline = Math.max(0, counts.total - byStatus.online - byStatus.busy - byStatus.away);
    for (const s of STATUSES) {
      const li = document.querySelector(`#status-summary [data-status="${s}"]`);
      li.dataset.count = String(byStatus[s]);
      setText(li.querySelector(".n"), formatNumber(byStatus[s]));
    }

    const filter = document.getElementById("member-filter").value.trim().toLowerCase();
    const status = document.getElementById("status-filter").value;
    const names = this.#session.userNames;
    let rows = members.filter((m) => {
      if (status === "present" ? m.status === "offline" : status && m.status !== status) return false;
      if (!filter) return true;
      return m.user.toLowerCase().includes(filter) || names.get(m.user).toLowerCase().includes(filter) ||
        (m.text ?? "").toLowerCase().includes(filter);
    });
    const matched = rows.length;
    rows.sort((a, b) => (ORDER[a.status] ?? 9) - (ORDER[b.status] ?? 9) || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
    rows = rows.slice(0, MAX_ROWS);
    names.need(rows.map((m) => m.user));

    const now = Date.now();
    document.getElementById("members-body").replaceChildren(...rows.map((m) => this.#row(m, now)));
    const empty = members.length === 0 ? (this.#loading ? "" : "This group has no members.") :
      matched === 0 ? "No member matches the filter." : "";
    setText(show("members-empty", empty !== ""), empty);
    const more = [];
    if (matched > rows.length) {
      more.push(`Showing ${formatNumber(rows.length)} of ${formatNumber(matched)} members; filter to find the others.`);
    }
    const unlisted = counts ? counts.total - members.length : 0;
    if (unlisted > 0 && !this.#loading) {
      more.push(`${formatNumber(unlisted)} offline ${unlisted === 1 ? "member is" : "members are"} not listed` +
        (this.#session.caps.membership ? "." : ": listing every member needs a token with the membership:read scope."));
    }
    setText("members-more", more.join(" "));
  }

  #row(m, now) {
    const since = m.status === "offline" && m.last_seen
      ? el("span", {}, "last seen ", timeAgo(m.last_seen, now))
      : timeAgo(m.since, now);
    return el("tr", { "data-user": m.user, "data-status": m.status },
      el("th", { scope: "row" }, el("span", { class: "id" }, m.user)),
      el("td", { "data-field": "name" }, this.#session.userNames.get(m.user)),
      el("td", { "data-field": "role" }, this.#roles.get(m.user) ?? ""),
      el("td", { "data-field": "status" }, el("span", { class: "status", "data-status": m.status }, m.status)),
      el("td", { "data-field": "text", class: "text" }, m.text ?? ""),
      el("td", { "data-field": "since" }, since));
  }
}

// describe turns a failed subscription into a sentence.
function describe(err, group) {
  switch (err?.code) {
    case "forbidden": return `This token may not see the group "${group}".`;
    case "not_found": return `There is no group "${group}".`;
    case "closed": return "The connection to the broker is closed.";
    default: return `The group could not be watched: ${err?.message ?? err}`;
  }
}
