package broker

import (
	"net/http"
	"slices"

	"github.com/presenced/presenced/membership"
)

// userBody is the JSON of a user in requests. Pointer fields distinguish
// "absent" from "zero" for PATCH.
type userBody struct {
	ID        string               `json:"id"`
	Username  *string              `json:"username"`
	Name      *string              `json:"name"`
	AvatarURL *string              `json:"avatarUrl"`
	UTCOffset *float64             `json:"utcOffset"`
	Type      *membership.UserType `json:"type"`
	Active    *bool                `json:"active"`
	Roles     *[]string            `json:"roles"`
}

func (b userBody) applyTo(u *membership.User) {
	if b.Username != nil {
		u.Username = *b.Username
	}
	if b.Name != nil {
		u.Name = *b.Name
	}
	if b.AvatarURL != nil {
		u.AvatarURL = *b.AvatarURL
	}
	if b.UTCOffset != nil {
		u.UTCOffset = *b.UTCOffset
	}
	if b.Type != nil {
		u.Type = *b.Type
	}
	if b.Active != nil {
		u.Active = *b.Active
	}
	if b.Roles != nil {
		u.Roles = *b.Roles
	}
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	var b userBody
	if err := s.decodeJSON(w, r, &b); err != nil {
		return err
	}
	u := membership.User{ID: b.ID, Active: true}
	b.applyTo(&u)
	u, err := s.store.CreateUser(r.Context(), u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

// The membership reads follow the rules of every API (see
// membership.Authority): a token bound to a user reads the users it may
// see and the groups it may watch; the others read as missing ones do.

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.seeUser(r, id); err != nil {
		return err
	}
	u, ok := s.store.Index().User(id)
	if !ok {
		return &apiError{http.StatusNotFound, codeNotFound, "user " + id + " not found"}
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	visible := s.authority.UserFilter(viewerOf(r))
	id := func(u membership.User) string { return u.ID }
	users := filteredPage(s.store.Index().ListUsers, id, after, limit, func(u membership.User) bool { return visible(u.ID) })
	writeJSON(w, http.StatusOK, newPage(users, limit, id))
	return nil
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) error {
	var b userBody
	if err := s.decodeJSON(w, r, &b); err != nil {
		return err
	}
	if b.ID != "" && b.ID != r.PathValue("id") {
		return badRequest("id in the body differs from the path")
	}
	u, err := s.store.UpdateUser(r.Context(), r.PathValue("id"), func(u *membership.User) error {
		b.applyTo(u)
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	if err := s.store.DeleteUser(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// setUserRole adds (PUT) or removes (DELETE) a global role of a user.
func (s *Server) setUserRole(add bool) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		role := r.PathValue("role")
		u, err := s.store.UpdateUser(r.Context(), r.PathValue("id"), func(u *membership.User) error {
			roles := u.Roles[:0:0]
			for _, x := range u.Roles {
				if x != role {
					roles = append(roles, x)
				}
			}
			if add {
				roles = append(roles, role)
			}
			u.Roles = roles
			return nil
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, u)
		return nil
	}
}

func (s *Server) listUserGroups(w http.ResponseWriter, r *http.Request) error {
	uid := r.PathValue("id")
	if err := s.seeUser(r, uid); err != nil {
		return err
	}
	viewer := viewerOf(r)
	ms := s.store.Index().GroupsOf(uid)
	ms = slices.DeleteFunc(ms, func(m membership.Member) bool { return !s.authority.CanWatchGroup(viewer, m.GroupID) })
	writeJSON(w, http.StatusOK, listResponse[membership.Member]{Items: ms})
	return nil
}
