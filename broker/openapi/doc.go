// Package openapi holds the OpenAPI 3.1 document of the native REST API,
// embedded in the binary: every route of broker's table marked native, with
// its parameters, bodies, answers, error codes and the token scope it needs.
// The vendors' compatibility APIs, the dashboard and the WebSocket upgrade
// are not in it.
//
// Entry points: JSON returns the document and Handler serves it, as the
// broker does at GET /v1/openapi.json without authentication.
//
// The document is written by hand in openapi.json. broker's tests hold it to
// the code: one fails when a native route is missing from it or when it
// names a route the router does not have, and the REST tests validate every
// answer of a native route against it.
package openapi
