// DOM helpers. Every string from the broker (ids, names, status texts) is
// written with textContent or setAttribute, never parsed as HTML.

/** Creates an element. attrs: attribute name -> value (null/false: left
 * out, true: empty). children: nodes or strings (as text). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Sets the text of node (by id or element) only if it changed. */
export function setText(node, text) {
  const n = typeof node === "string" ? document.getElementById(node) : node;
  const s = String(text);
  if (n.textContent !== s) n.textContent = s;
  return n;
}

/** Shows or hides a node (by id or element). */
export function show(node, visible = true) {
  const n = typeof node === "string" ? document.getElementById(node) : node;
  n.hidden = !visible;
  return n;
}

const numberFormat = new Intl.NumberFormat();

export function formatNumber(n) {
  return typeof n === "number" && Number.isFinite(n) ? numberFormat.format(n) : "–";
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** Returns a <time> element for unix milliseconds ms, reading like "5
 * minutes ago", with the full date as its title; null for 0 or absent. */
export function timeAgo(ms, now = Date.now()) {
  if (!ms) return null;
  const d = new Date(ms);
  return el("time", { datetime: d.toISOString(), title: absolute.format(d) }, relativeText(ms, now));
}

function relativeText(ms, now) {
  const s = Math.round((ms - now) / 1000);
  const abs = Math.abs(s);
  if (abs < 45) return "just now";
  if (abs < 45 * 60) return relative.format(Math.round(s / 60), "minute");
  if (abs < 22 * 3600) return relative.format(Math.round(s / 3600), "hour");
  return relative.format(Math.round(s / 86400), "day");
}

/** Calls fn once per animation frame however often it is requested. */
export function frameScheduler(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}
