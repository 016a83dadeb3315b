package broker

import "net/http"

// healthz is liveness: 200 unless the node cannot recover by itself (its
// presence engine has been unavailable for presence.FaultAfter while NATS
// is connected, or its membership bucket is gone from the store), so that
// an orchestrator restarts it then.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.store != nil {
		// The membership bucket is gone from the store: only a new start
		// makes it again and follows it.
		if err := s.store.Lost(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "faulted", "error": err.Error()})
			return
		}
	}
	if s.engine != nil {
		if err := s.engine.Faulted(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "faulted", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 once the node has started, is connected to NATS, its
// presence engine can write (its lease writes land) and its membership
// index follows the bucket; 503 otherwise. It asks JetStream nothing
// itself: account requests are answered by the cluster's meta leader only,
// so such a check made every node unready, and slow to answer, for the
// whole election that follows the loss of that one server, while the
// streams' own leaders took writes.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{}
	ok := s.isReady.Load()
	if !ok {
		checks["startup"] = "not finished"
	}
	if s.nc == nil || !s.nc.IsConnected() {
		ok = false
		checks["nats"] = "disconnected"
	} else {
		checks["nats"] = "ok"
	}
	if s.engine != nil {
		if err := s.engine.Available(); err != nil {
			ok = false
			checks["presence"] = err.Error()
		} else {
			checks["presence"] = "ok"
		}
	}
	if s.store != nil {
		if err := s.store.Err(); err != nil {
			ok = false
			checks["membership"] = err.Error()
		} else {
			checks["membership"] = "ok"
		}
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ok, "checks": checks})
}
