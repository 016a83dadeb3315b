package broker

import (
	"net/http"

	"github.com/presenced/presenced/membership"
)

type groupBody struct {
	ID   string                `json:"id"`
	Name *string               `json:"name"`
	Type *membership.GroupType `json:"type"`
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) error {
	var b groupBody
	if err := s.decodeJSON(w, r, &b); err != nil {
		return err
	}
	g := membership.Group{ID: b.ID}
	if b.Name != nil {
		g.Name = *b.Name
	}
	if b.Type != nil {
		g.Type = *b.Type
	}
	g, err := s.store.CreateGroup(r.Context(), g)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, g)
	return nil
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.watchGroup(r, id); err != nil {
		return err
	}
	g, ok := s.store.Index().Group(id)
	if !ok {
		return &apiError{http.StatusNotFound, codeNotFound, "group " + id + " not found"}
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) error {
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	viewer := viewerOf(r)
	id := func(g membership.Group) string { return g.ID }
	gs := filteredPage(s.store.Index().ListGroups, id, after, limit, func(g membership.Group) bool {
		return s.authority.CanWatchGroup(viewer, g.ID)
	})
	writeJSON(w, http.StatusOK, newPage(gs, limit, id))
	return nil
}

func (s *Server) patchGroup(w http.ResponseWriter, r *http.Request) error {
	var b groupBody
	if err := s.decodeJSON(w, r, &b); err != nil {
		return err
	}
	if b.ID != "" && b.ID != r.PathValue("id") {
		return badRequest("id in the body differs from the path")
	}
	g, err := s.store.UpdateGroup(r.Context(), r.PathValue("id"), func(g *membership.Group) error {
		if b.Name != nil {
			g.Name = *b.Name
		}
		if b.Type != nil {
			g.Type = *b.Type
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	if err := s.store.DeleteGroup(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listMembers pages through a group's members in join order; the cursor is
// the last user id of the previous page.
func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) error {
	gid := r.PathValue("id")
	if err := s.watchGroup(r, gid); err != nil {
		return err
	}
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	ms := s.store.Index().Members(gid)
	if after != "" {
		i := 0
		for i < len(ms) && ms[i].UserID != after {
			i++
		}
		if i == len(ms) {
			return badRequest("cursor is not one this API returned")
		}
		ms = ms[i+1:]
	}
	if len(ms) > limit {
		ms = ms[:limit]
	}
	writeJSON(w, http.StatusOK, newPage(ms, limit, func(m membership.Member) string { return m.UserID }))
	return nil
}

type memberBody struct {
	Role  membership.MemberRole `json:"role"`
	Roles []string              `json:"roles"`
}

func (s *Server) putMember(w http.ResponseWriter, r *http.Request) error {
	var b memberBody
	if r.ContentLength != 0 {
		if err := s.decodeJSON(w, r, &b); err != nil {
			return err
		}
	}
	m, err := s.store.PutMember(r.Context(), membership.Member{
		GroupID: r.PathValue("id"), UserID: r.PathValue("user"), Role: b.Role, Roles: b.Roles,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (s *Server) deleteMember(w http.ResponseWriter, r *http.Request) error {
	if err := s.store.DeleteMember(r.Context(), r.PathValue("id"), r.PathValue("user")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
