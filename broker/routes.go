package broker

import (
	"net/http"

	"github.com/presenced/presenced/broker/dashboard"
	"github.com/presenced/presenced/broker/openapi"
	"github.com/presenced/presenced/broker/webhook"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/protocol/jsclient"
)

// route is one entry of the HTTP routing table.
type route struct {
	// pattern is a net/http ServeMux pattern.
	pattern string
	handler http.Handler
	// native marks the routes of the native API, which openapi.json
	// documents; the vendors' APIs, the dashboard's files and the
	// WebSocket upgrade are not.
	native bool
}

// routes is every route the server answers, with the scope it requires
// and its handler: the one place to look for what the HTTP API holds.
func (s *Server) routes() ([]route, error) {
	read, write := membership.ScopeMembershipRead, membership.ScopeMembershipWrite
	pread, publish := membership.ScopePresenceRead, membership.ScopePresencePublish
	tokens := membership.ScopeTokens
	hooks := s.hooks.API()
	rc, cc, bx, err := s.compatHandlers()
	if err != nil {
		return nil, err
	}
	api := func(pattern, scope string, h handler) route { return route{pattern, s.api(scope, h), true} }
	plain := func(pattern string, h http.HandlerFunc) route { return route{pattern, h, true} }
	other := func(pattern string, h http.Handler) route { return route{pattern, h, false} }
	return []route{
		// Health and metrics (api_health.go, metrics.go).
		plain("GET /healthz", s.healthz),
		plain("GET /readyz", s.readyz),
		route{"GET /metrics", s.metricsAuth(s.metricsHandler()), true},
		route{"GET /v1/openapi.json", openapi.Handler(), true},

		// Membership (api_users.go, api_groups.go, api_roles.go, api_import.go).
		api("GET /v1/users", read, s.listUsers),
		api("POST /v1/users", write, s.createUser),
		api("GET /v1/users/{id}", read, s.getUser),
		api("PATCH /v1/users/{id}", write, s.patchUser),
		api("DELETE /v1/users/{id}", write, s.deleteUser),
		api("GET /v1/users/{id}/groups", read, s.listUserGroups),
		api("PUT /v1/users/{id}/roles/{role}", write, s.setUserRole(true)),
		api("DELETE /v1/users/{id}/roles/{role}", write, s.setUserRole(false)),
		api("GET /v1/groups", read, s.listGroups),
		api("POST /v1/groups", write, s.createGroup),
		api("GET /v1/groups/{id}", read, s.getGroup),
		api("PATCH /v1/groups/{id}", write, s.patchGroup),
		api("DELETE /v1/groups/{id}", write, s.deleteGroup),
		api("GET /v1/groups/{id}/members", read, s.listMembers),
		api("PUT /v1/groups/{id}/members/{user}", write, s.putMember),
		api("DELETE /v1/groups/{id}/members/{user}", write, s.deleteMember),
		api("GET /v1/roles", read, s.listRoles),
		api("PUT /v1/roles/{id}", write, s.putRole),
		api("DELETE /v1/roles/{id}", write, s.deleteRole),
		api("POST /v1/import", write, s.importNDJSON),
		api("GET /v1/export", read, s.exportNDJSON),

		// Tokens (api_tokens.go).
		api("GET /v1/tokens", tokens, s.listTokens),
		api("POST /v1/tokens", tokens, s.createToken),
		api("DELETE /v1/tokens/{id}", tokens, s.revokeToken),

		// Presence (api_presence.go) and the WebSocket (ws.go).
		api("POST /v1/presence/status", publish, s.publishStatus),
		api("POST /v1/presence/status/batch", publish, s.publishStatusBatch),
		api("GET /v1/presence/users", pread, s.presenceOfUsers),
		api("GET /v1/presence/users/{id}", pread, s.presenceOfUser),
		api("GET /v1/presence/users/{id}/groups", pread, s.whereNow),
		api("GET /v1/presence/groups/{id}", pread, s.groupSnapshot),
		api("GET /v1/presence/counts", pread, s.groupCounts),
		api("GET /v1/presence/counts/history", pread, s.countsHistory),
		api("GET /v1/presence/changes", pread, s.changedSince),
		api("GET /v1/stats", pread, s.stats),
		other("GET /v1/ws", http.HandlerFunc(s.serveWS)),
		other("GET /v1/client.js", http.HandlerFunc(serveClientJS)),

		// Webhooks (package webhook).
		api("GET /v1/webhooks", webhook.Scope, hooks.List),
		api("POST /v1/webhooks", webhook.Scope, hooks.Create),
		api("GET /v1/webhooks/{id}", webhook.Scope, hooks.Get),
		api("PATCH /v1/webhooks/{id}", webhook.Scope, hooks.Patch),
		api("DELETE /v1/webhooks/{id}", webhook.Scope, hooks.Delete),
		api("GET /v1/webhooks/{id}/status", webhook.Scope, hooks.Status),

		// The dashboard (package dashboard) and the vendors' APIs (compat.go).
		other("GET /dashboard/", dashboard.Handler()),
		other("/api/v1/", rc),
		other("/v3/", cc),
		other("/rest/", bx),

		// Rocket.Chat's realtime API (package ddp), where its clients look.
		other("GET /websocket", s.ddp.Load()),
		other("GET /sockjs/info", s.ddp.Load()),
		other("GET /sockjs/{server}/{session}/websocket", s.ddp.Load()),

		// Anything else under /v1/ answers the native not_found.
		other("/v1/", s.api("", func(w http.ResponseWriter, r *http.Request) error {
			return &apiError{http.StatusNotFound, codeNotFound, "no such endpoint: " + r.Method + " " + r.URL.Path}
		})),
	}, nil
}

// mux registers every route.
func (s *Server) mux() (*http.ServeMux, error) {
	rs, err := s.routes()
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	for _, r := range rs {
		mux.Handle(r.pattern, s.metrics.instrument(r.pattern, r.handler))
	}
	return mux, nil
}

func serveClientJS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", jsclient.ContentType)
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(jsclient.Source)
}
