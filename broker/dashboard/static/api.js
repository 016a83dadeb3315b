// The broker's REST API, on the dashboard's own origin (the dashboard is
// served at /dashboard/, the API at /v1/).

const BASE = new URL("../v1/", document.baseURI);

/** An answer of the API other than 2xx. status is the HTTP status (0 when
 * the broker could not be reached), code the API's error code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** GETs path (relative to /v1/) with the token; resolves with the JSON
 * body or rejects with an ApiError. */
export async function get(path, token, { signal } = {}) {
  let resp;
  try {
    resp = await fetch(new URL(path, BASE), {
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "unreachable", "the broker could not be reached");
  }
  let body = null;
  try {
    body = await resp.json();
  } catch {
    // not JSON: keep null
  }
  if (!resp.ok) {
    const e = body && body.error ? body.error : {};
    throw new ApiError(resp.status, e.code || "http_" + resp.status, e.message || resp.statusText || "request failed");
  }
  return body;
}

/** Returns the HTTP status of GET path: 200 when the token may read it,
 * 401 when it is rejected, 403 when it lacks the scope; 0 when the broker
 * could not be reached. */
export async function probe(path, token) {
  try {
    await get(path, token);
    return 200;
  } catch (err) {
    if (err instanceof ApiError) return err.status;
    throw err;
  }
}

/** Calls onPage(items) for every page of a cursor-paged list, at most
 * maxPages pages. */
export async function eachPage(path, token, onPage, { limit = 1000, maxPages = 20, signal } = {}) {
  let cursor = "";
  for (let i = 0; i < maxPages; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const q = `${path}${sep}limit=${limit}` + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    const page = await get(q, token, { signal });
    onPage(page.items ?? []);
    cursor = page.nextCursor ?? "";
    if (!cursor) return;
  }
}

/** The URL of the broker's WebSocket endpoint. */
export function webSocketURL() {
  const u = new URL("../v1/ws", document.baseURI);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.toString();
}
