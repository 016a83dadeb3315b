// The online history of the whole server or of one group: the last hour
// and the last 24 hours as charts, the latest sample and the peak of the
// day, polled from GET /v1/presence/counts/history (presence:read). The
// broker samples every 10 s and every minute, the same on every node.

import { ApiError, get } from "./api.js";
import { Chart } from "./chart.js";
import { el, formatNumber, setText, show } from "./dom.js";

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
// Polls follow the sample period the broker answers with, within bounds.
const MIN_POLL = 1000;
const MAX_POLL = 60000;
const RETRY = 5000; // after a failed poll
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const clockSeconds = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** parseStep reads "10s", "1m", "250ms" as milliseconds (0 if unknown). */
export function parseStep(s) {
  const m = /^(\d+)(ms|s|m|h)$/.exec(s ?? "");
  if (!m) return 0;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2]];
}

export class HistoryPanel {
  #root;
  #session;
  #group = null; // shown: "" the server, an id a group; null hidden
  #controller = null;
  #timer = null;
  #ranges; // [{name, window, chart, step, next}]
  #figures;

  /** root: the panel's <section>; its heading stays, the rest is made
   * here. */
  constructor(root, session) {
    this.#root = root;
    root.replaceChildren(root.querySelector("h2"));
    this.#session = session;
    const id = root.id;
    this.#figures = el("p", { class: "history-figures" },
      el("span", {}, "Latest sample ", el("strong", { "data-field": "latest" }, "–"),
        " ", el("span", { class: "muted", "data-field": "latest-at" })),
      el("span", {}, "Peak today ", el("strong", { "data-field": "peak" }, "–"),
        " ", el("span", { class: "muted", "data-field": "peak-at" })));
    const charts = el("div", { class: "charts" });
    this.#ranges = [
      { name: "hour", window: HOUR, caption: "Last hour" },
      { name: "day", window: DAY, caption: "Last 24 hours" },
    ].map((r) => {
      const caption = el("figcaption", { id: `${id}-${r.name}-caption` }, r.caption);
      const figure = el("figure", { class: "chart", "data-range": r.name }, caption);
      charts.append(figure);
      return { ...r, chart: new Chart(figure, r.window, `Online users, ${r.caption.toLowerCase()}`), step: 0, next: 0 };
    });
    root.append(this.#figures, charts,
      el("p", { class: "note", "data-field": "note", hidden: true }),
      el("p", { class: "error", "data-field": "error", hidden: true }));
  }

  /** Shows the history of group ("" for the whole server) and polls it. */
  show(group) {
    this.hide();
    this.#group = group;
    this.#controller = new AbortController();
    for (const r of this.#ranges) {
      r.next = 0;
      r.chart.draw([], 1, Date.now());
    }
    setText(this.#field("latest"), "–");
    setText(this.#field("latest-at"), "");
    setText(this.#field("peak"), "–");
    setText(this.#field("peak-at"), "");
    this.#setError("");
    if (!this.#session.caps.presence) {
      this.#setNote("The online history needs an API token with the presence:read scope.");
      return;
    }
    this.#setNote("");
    this.#poll(this.#controller.signal);
  }

  /** Stops polling. */
  hide() {
    this.#group = null;
    this.#controller?.abort();
    this.#controller = null;
    clearTimeout(this.#timer);
    this.#timer = null;
  }

  async #poll(signal) {
    const group = this.#group;
    const now = Date.now();
    try {
      for (const r of this.#ranges) {
        if (r.next > now) {
          r.chart.redraw(now); // the window moves on between samples
          continue;
        }
        const from = new Date(now - r.window).toISOString();
        const q = `presence/counts/history?from=${encodeURIComponent(from)}` + (group ? `&group=${encodeURIComponent(group)}` : "");
        const h = await get(q, this.#session.token, { signal });
        if (signal.aborted) return;
        r.step = parseStep(h.step) || r.window / 360;
        r.next = now + Math.min(Math.max(r.step, MIN_POLL), MAX_POLL);
        const samples = h.samples.map((p) => ({ t: Date.parse(p.t), online: p.online }));
        r.chart.draw(samples, r.step, Date.parse(h.to) || now);
        if (r.name === "hour") this.#figuresFrom(samples, h.peak);
      }
      this.#setError("");
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status === 401) {
        this.#session.onRejected("The broker no longer accepts this token. Sign in again.");
        return;
      }
      if (err instanceof ApiError && err.status === 403) {
        this.#setNote("The online history needs an API token with the presence:read scope.");
        return;
      }
      if (err instanceof ApiError && err.status === 404) {
        this.#setError("There is no online history: " + err.message + ".");
        return;
      }
      this.#setError("The online history could not be read: " + err.message);
      for (const r of this.#ranges) r.next = Date.now() + RETRY;
    }
    if (signal.aborted) return;
    const wait = Math.min(...this.#ranges.map((r) => r.next)) - Date.now();
    this.#timer = setTimeout(() => this.#poll(signal), Math.max(wait, MIN_POLL));
  }

  #figuresFrom(samples, peak) {
    const last = samples.at(-1);
    const latest = setText(this.#field("latest"), last ? formatNumber(last.online) : "–");
    if (last) latest.dataset.value = String(last.online);
    else delete latest.dataset.value;
    setText(this.#field("latest-at"), last ? `at ${clockSeconds.format(last.t)}` : "no sample in the last hour");
    const p = setText(this.#field("peak"), peak?.at ? formatNumber(peak.online) : "–");
    p.dataset.value = peak?.at ? String(peak.online) : "";
    setText(this.#field("peak-at"), peak?.at ? `at ${clock.format(Date.parse(peak.at))} (UTC day ${peak.day})` : "");
  }

  #field(name) {
    return this.#root.querySelector(`[data-field="${name}"]`);
  }

  #setNote(text) {
    setText(show(this.#field("note"), text !== ""), text);
    this.#root.querySelector(".charts").hidden = text !== "";
    this.#figures.hidden = text !== "";
  }

  #setError(text) {
    setText(show(this.#field("error"), text !== ""), text);
  }
}
