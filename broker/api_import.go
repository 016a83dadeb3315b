package broker

import (
	"encoding/json"
	"net/http"

	"github.com/presenced/presenced/membership"
)

// importNDJSON stores an NDJSON body of users, groups, members and roles and
// answers with the report. With ?progress=1 the answer is NDJSON too: one
// progress line per batch, then the final report.
func (s *Server) importNDJSON(w http.ResponseWriter, r *http.Request) error {
	body := http.MaxBytesReader(w, r.Body, s.cfg.Limits.MaxImportBytes)
	var progress func(membership.ImportReport)
	if r.URL.Query().Get("progress") == "1" {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		rc := http.NewResponseController(w)
		progress = func(rep membership.ImportReport) {
			_ = enc.Encode(map[string]any{"progress": map[string]int{"lines": rep.Lines, "failed": rep.Failed}})
			_ = rc.Flush()
		}
		rep, err := s.store.Import(r.Context(), body, progress)
		if err != nil {
			_ = enc.Encode(map[string]any{"error": map[string]string{"code": codeInternal, "message": err.Error()}})
			return nil
		}
		_ = enc.Encode(map[string]any{"report": rep})
		return nil
	}
	rep, err := s.store.Import(r.Context(), body, nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
