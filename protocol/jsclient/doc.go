// Package jsclient holds client.js, the JavaScript client of the presenced
// WebSocket protocol: an ES module without dependencies or build step, for
// browsers and Node 20+. The broker serves [Source] at /v1/client.js (as
// text/javascript). The API is documented at the top of client.js.
package jsclient
