// Package dashboard serves the operators' web dashboard of presenced: plain
// HTML, CSS and JavaScript embedded in the binary, without a build step.
//
// [Handler] answers every path under [Prefix] ("/dashboard/"). The broker
// mounts it there; the pages talk to the broker's own API on the same
// origin: REST under /v1 for the stats, group and member details and the
// online history (GET /v1/presence/counts/history, plotted as SVG by
// chart.js for the last hour and the last 24 hours, polled as often as
// the broker samples), and the WebSocket at /v1/ws through the JavaScript
// client served at /v1/client.js (watch_counts for the live counts,
// subscribe for a group's members).
//
// Signing in takes an API token with the presence:read scope (the
// WebSocket then observes every group without being a presence session) or
// a user token (the user sees the groups they belong to, and, like any
// WebSocket of theirs, the dashboard's connection makes them present). The
// token is kept in the tab's sessionStorage only.
//
// Every answer carries a strict Content-Security-Policy (no inline script
// or style, connections to the same origin only) and X-Content-Type-Options
// nosniff; the scripts write user-provided text with textContent only.
package dashboard
