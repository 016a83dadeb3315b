package webhook

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/presenced/presenced/broker/internal/strictjson"
	"github.com/presenced/presenced/membership"
)

// Scope is the token scope every webhook route requires.
const Scope = membership.ScopeAdmin

// API is the webhook REST API: one handler per route, each needing Scope.
// A handler returns its error (an *HTTPError carries the status and code)
// for the caller to render as {"error":{"code","message"}}.
//
//	GET    /v1/webhooks              List (?limit=1..1000, default 100; ?cursor=)
//	POST   /v1/webhooks              Create {url, secret?, users?, disabled?}: 201, secret shown once
//	GET    /v1/webhooks/{id}         Get: one webhook, without its secret
//	PATCH  /v1/webhooks/{id}         Patch {url?, users?, disabled?}
//	DELETE /v1/webhooks/{id}         Delete: 204
//	GET    /v1/webhooks/{id}/status  Status: delivery counters over the cluster
type API struct {
	List, Create, Get, Patch, Delete, Status func(w http.ResponseWriter, r *http.Request) error
}

// API returns the handlers of the webhook REST API.
func (s *Service) API() API {
	return API{List: s.apiList, Create: s.apiCreate, Get: s.apiGet, Patch: s.apiPatch, Delete: s.apiDelete, Status: s.apiStatus}
}

// view is a webhook as the API shows it: the secret only at creation.
type view struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Secret    string    `json:"secret,omitempty"`
	Users     []string  `json:"users"`
	CreatedAt time.Time `json:"createdAt"`
	Disabled  bool      `json:"disabled"`
}

func viewOf(w Webhook, withSecret bool) view {
	v := view{ID: w.ID, URL: w.URL, Users: w.Users, CreatedAt: w.CreatedAt, Disabled: w.Disabled}
	if v.Users == nil {
		v.Users = []string{}
	}
	if withSecret {
		v.Secret = w.Secret
	}
	return v
}

type createRequest struct {
	URL      string   `json:"url"`
	Secret   string   `json:"secret"`
	Users    []string `json:"users"`
	Disabled bool     `json:"disabled"`
}

type patchRequest struct {
	URL      *string   `json:"url"`
	Users    *[]string `json:"users"`
	Disabled *bool     `json:"disabled"`
}

type listResponse struct {
	Items      []view `json:"items"`
	NextCursor string `json:"nextCursor,omitempty"`
}

func (s *Service) storeOrErr() (*Store, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.store == nil || s.closing {
		return nil, &HTTPError{http.StatusServiceUnavailable, CodeUnavailable, "webhooks are not running"}
	}
	return s.store, nil
}

func badRequest(msg string) *HTTPError {
	return &HTTPError{http.StatusBadRequest, CodeBadRequest, msg}
}

func (s *Service) apiList(w http.ResponseWriter, r *http.Request) error {
	st, err := s.storeOrErr()
	if err != nil {
		return err
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit must be an integer from 1 to 1000")
		}
		limit = n
	}
	after := ""
	if c := r.URL.Query().Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || !ValidID(string(b)) {
			return badRequest("cursor is not one this API returned")
		}
		after = string(b)
	}
	all := st.List()
	i, _ := slices.BinarySearchFunc(all, after, func(w Webhook, id string) int {
		switch {
		case w.ID <= id:
			return -1
		default:
			return 1
		}
	})
	resp := listResponse{Items: []view{}}
	for _, h := range all[i:] {
		if len(resp.Items) == limit {
			resp.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(resp.Items[limit-1].ID))
			break
		}
		resp.Items = append(resp.Items, viewOf(h, false))
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Service) apiCreate(w http.ResponseWriter, r *http.Request) error {
	st, err := s.storeOrErr()
	if err != nil {
		return err
	}
	var req createRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	h, err := st.Create(r.Context(), Webhook{URL: req.URL, Secret: req.Secret, Users: req.Users, Disabled: req.Disabled})
	if err != nil {
		return httpError(err)
	}
	w.Header().Set("Location", "/v1/webhooks/"+h.ID)
	writeJSON(w, http.StatusCreated, viewOf(h, true))
	return nil
}

func (s *Service) apiGet(w http.ResponseWriter, r *http.Request) error {
	st, err := s.storeOrErr()
	if err != nil {
		return err
	}
	h, err := st.Get(r.PathValue("id"))
	if err != nil {
		return httpError(err)
	}
	writeJSON(w, http.StatusOK, viewOf(h, false))
	return nil
}

func (s *Service) apiPatch(w http.ResponseWriter, r *http.Request) error {
	st, err := s.storeOrErr()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if _, err := st.Get(id); err != nil {
		return httpError(err) // before reading a body for nothing
	}
	var req patchRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	h, err := st.Update(r.Context(), id, func(h *Webhook) error {
		if req.URL != nil {
			h.URL = *req.URL
		}
		if req.Users != nil {
			h.Users = *req.Users
		}
		if req.Disabled != nil {
			h.Disabled = *req.Disabled
		}
		return nil
	})
	if err != nil {
		return httpError(err)
	}
	writeJSON(w, http.StatusOK, viewOf(h, false))
	return nil
}

func (s *Service) apiDelete(w http.ResponseWriter, r *http.Request) error {
	st, err := s.storeOrErr()
	if err != nil {
		return err
	}
	if err := st.Delete(r.Context(), r.PathValue("id")); err != nil {
		return httpError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) apiStatus(w http.ResponseWriter, r *http.Request) error {
	st, err := s.storeOrErr()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if _, err := st.Get(id); err != nil {
		return httpError(err)
	}
	status, err := s.Status(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, status)
	return nil
}

// decode reads a JSON body into v strictly: one value, no unknown fields,
// at most MaxBodyBytes.
func (s *Service) decode(w http.ResponseWriter, r *http.Request, v any) error {
	err := strictjson.Decode(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), v)
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return httpError(err)
	}
	return badRequest(err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
