package broker

import (
	"net/http"

	"github.com/presenced/presenced/membership"
)

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, listResponse[membership.Role]{Items: s.store.Index().Roles()})
	return nil
}

func (s *Server) putRole(w http.ResponseWriter, r *http.Request) error {
	var role membership.Role
	if err := s.decodeJSON(w, r, &role); err != nil {
		return err
	}
	if role.ID == "" {
		role.ID = r.PathValue("id")
	}
	if role.ID != r.PathValue("id") {
		return badRequest("id in the body differs from the path")
	}
	if err := s.store.PutRole(r.Context(), role); err != nil {
		return err
	}
	role, _ = s.store.Index().Role(role.ID)
	writeJSON(w, http.StatusOK, role)
	return nil
}

func (s *Server) deleteRole(w http.ResponseWriter, r *http.Request) error {
	if err := s.store.DeleteRole(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
