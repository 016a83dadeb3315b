// Package broker is the running presenced node: NATS (embedded nats-server
// with JetStream, or an external cluster), the membership store, the
// presence engine, and every API in front of them: the native REST API,
// the WebSocket protocol, the vendors' compatibility APIs, the dashboard,
// webhooks, metrics and health. It holds no presence state of its own.
//
// # Entry points
//
// New(Config) → Server.Start(ctx) → Server.Ready() → Server.Shutdown(ctx).
// Flags registers every option of the presenced command and builds a
// Config; BaseURL turns a listen address into a local URL.
//
// # Where things are
//
//   - server.go: the Server, its start (NATS, stores, engine, webhooks,
//     HTTP) and its stop; nats.go: the embedded nats-server and the client
//     connection; presence.go: the presence engine's start and stop;
//     datadir.go: the data directory's lock; damage.go: what a start found
//     lost in the data directory, and the state file it compares with.
//   - config.go, flags.go, limits.go: configuration and its defaults.
//   - routes.go: every HTTP route with its scope and handler; http.go and
//     listener.go: the HTTP server and its connection limit.
//   - httpapi.go: what every native handler shares: authentication, scope
//     checks, rate limits (ratelimit.go), the error body, strict JSON
//     (internal/strictjson), pagination. auth.go: API tokens and user JWTs
//     as a membership.Credential; who may do what is membership.Authority.
//   - api_users.go, api_groups.go, api_roles.go, api_import.go,
//     api_tokens.go, api_presence.go, api_history.go, api_health.go: the
//     native REST API, one file per resource.
//   - ws.go: the WebSocket protocol (protocol/README.md) for one
//     connection; wspool.go: the shared writer and op pools and the
//     pinger; internal/wsaccept: small buffers for hijacked connections
//     and origin patterns; framecache.go and snapcache.go: frames and
//     snapshot members encoded once for every subscriber.
//   - availability.go: what a node cut off from its store tells every
//     API; authority_changes.go: a revoked token, a deactivated user or a
//     removed member reaching the open connections at once.
//   - compat.go: the adapters the vendor packages (compat/rocketchat,
//     compat/cometchat, compat/bitrix24, compat/ddp) are built on.
//   - metrics.go: the Prometheus registry.
//
// Subpackages: compat (the vendors' APIs), dashboard (the web page),
// history (online counts sampled into JetStream for plots), webhook
// (registrations and delivery of the change feed), openapi (the native
// API's OpenAPI document).
package broker
