// presenced dashboard: sign-in, the live connection and the routes
//   #/               overview (counts of every group, busiest groups, totals)
//   #/groups/<id>    one group's members and their statuses
// The page is plain ES modules served by the broker; the presence client
// is the broker's own /v1/client.js.

import { connect } from "../v1/client.js";
import { ApiError, probe, webSocketURL } from "./api.js";
import { setText, show } from "./dom.js";
import { GroupPage } from "./group.js";
import { GroupNames, UserNames } from "./names.js";
import { Overview } from "./overview.js";

const TOKEN_KEY = "presenced.dashboard.token";
const ID = /^[A-Za-z0-9_-]{1,64}$/;
// What an HTTP header and a WebSocket subprotocol entry can carry.
const TOKEN_CHARS = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

let session = null; // {token, caps, client, overview, groupPage, groupNames, userNames}
let current = null; // {view, group} shown

/** A sign-in that failed, with the sentence to show. */
class SignInError extends Error {}

// signIn checks what token may do and opens the WebSocket. Resolves with
// a session or rejects with a SignInError.
async function signIn(token) {
  if (!TOKEN_CHARS.test(token)) {
    throw new SignInError("This is not a token: it holds spaces or characters no token has.");
  }
  const caps = { presence: false, membership: false, user: "" };
  const stats = await probe("stats", token);
  switch (stats) {
    case 200: caps.presence = true; break;
    case 401: throw new SignInError("The broker rejected this token: it is unknown, revoked or expired.");
    case 403: break; // perhaps a user token: the WebSocket decides
    case 0: throw new SignInError("The broker could not be reached. Check the connection and try again.");
    default: throw new SignInError(`The broker answered with HTTP ${stats}. Try again later.`);
  }
  caps.membership = (await probe("groups?limit=1", token)) === 200;

  let client;
  try {
    client = await connect(webSocketURL(), { token, client: "presenced-dashboard", connectTimeout: 15000 });
  } catch {
    throw new SignInError(caps.presence
      ? "The broker did not accept a live connection with this token. Try again later."
      : "This token may not read presence: sign in with an API token that has the presence:read scope, " +
        "or with a user token that has the connect scope.");
  }
  caps.user = client.hello?.user ?? "";

  const groupNames = new GroupNames();
  const userNames = new UserNames(token, caps.membership);
  const s = { token, caps, client, groupNames, userNames, onRejected: (msg) => signOut(msg) };
  s.overview = new Overview(s);
  s.groupPage = new GroupPage(s);
  try {
    await s.overview.start();
  } catch (err) {
    s.overview.stop();
    s.groupPage.stop();
    client.close();
    throw new SignInError("The broker refused to send group counts: " + err.message);
  }
  groupNames.load(token, caps.membership);
  return s;
}

function watchConnection(s) {
  const state = document.getElementById("conn-state");
  const set = (value, text) => {
    state.dataset.state = value;
    setText(state, text);
  };
  set("live", "Live");
  s.client.on("connected", () => set("live", "Live"));
  s.client.on("disconnected", () => set("reconnecting", "Reconnecting…"));
  s.client.on("closed", ({ code }) => {
    if (session !== s) return;
    const why = code === 4001 ? "The token has expired." : code === 4002 ? "The token was revoked." :
      `The connection was closed (${code}).`;
    signOut(why + " Sign in again.");
  });
}

function showSignedIn(s) {
  show("signin-view", false);
  show("nav");
  show("session");
  setText("whoami", s.caps.user ? `Signed in as user ${s.caps.user}` : "Signed in with an API token");
  document.body.dataset.signedIn = s.caps.user ? "user" : "service";
  watchConnection(s);
  route();
}

function showSignIn(message = "") {
  if (current) leaveCurrent();
  show("overview-view", false);
  show("group-view", false);
  show("nav", false);
  show("session", false);
  show("signin-view");
  delete document.body.dataset.signedIn;
  document.title = "Sign in · presenced";
  const err = setText("signin-error", message);
  show(err, message !== "");
  document.getElementById("token").focus();
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  const s = session;
  session = null;
  if (s) {
    leaveCurrent();
    s.overview.stop();
    s.groupPage.stop();
    s.client.close();
  }
  showSignIn(message);
}

// ---- routes ----

function leaveCurrent() {
  if (!current || !session) {
    current = null;
    return;
  }
  if (current.view === "overview") session.overview.leave();
  else session.groupPage.leave();
  current = null;
}

function route() {
  if (!session) return;
  let hash = location.hash || "#/";
  if (!hash.startsWith("#/")) {
    if (current) return; // an in-page link such as the skip link
    hash = "#/";
  }
  const m = /^#\/groups\/([^/]+)$/.exec(hash);
  let next;
  if (hash === "#/") {
    next = { view: "overview", group: "" };
  } else if (m && ID.test(decodeURIComponent(m[1]))) {
    next = { view: "group", group: decodeURIComponent(m[1]) };
  } else {
    location.replace("#/");
    return;
  }
  if (current && current.view === next.view && current.group === next.group) return;
  const first = current === null;
  leaveCurrent();
  current = next;
  if (next.view === "overview") session.overview.enter();
  else session.groupPage.enter(next.group);
  if (!first) {
    // Move focus to the new page's heading so that screen readers announce it.
    document.getElementById(next.view === "overview" ? "overview-title" : "group-title").focus();
  }
}

// ---- start ----

async function start(token, form) {
  const button = document.getElementById("signin-submit");
  button.disabled = true;
  document.body.setAttribute("aria-busy", "true");
  setText("signin-status", form ? "Signing in…" : "");
  show("boot", !form);
  try {
    const s = await signIn(token);
    session = s;
    sessionStorage.setItem(TOKEN_KEY, token);
    document.getElementById("token").value = "";
    showSignedIn(s);
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    const msg = err instanceof SignInError ? err.message
      : err instanceof ApiError ? "The broker could not be asked: " + err.message
      : "Sign-in failed: " + (err?.message ?? err);
    showSignIn(msg);
  } finally {
    button.disabled = false;
    document.body.removeAttribute("aria-busy");
    setText("signin-status", "");
    show("boot", false);
  }
}

document.getElementById("signin-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const token = document.getElementById("token").value.trim();
  if (!token) {
    showSignIn("Enter a token.");
    return;
  }
  start(token, true);
});
document.getElementById("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  start(saved, false);
} else {
  showSignIn();
}
