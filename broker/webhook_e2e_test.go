package broker_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/presenced/presenced/broker"
	"github.com/presenced/presenced/broker/webhook"
)

// TestWebhookDelivery registers a webhook through the API and receives a
// signed batch when a user comes online over the WebSocket.
func TestWebhookDelivery(t *testing.T) {
	s := startServer(t, "", func(c *broker.Config) { c.WebhookAllowPrivate = true }) // the receiver is on loopback
	seedTeam(t, s)
	type batch struct {
		Changes []struct{ User, Status string }
	}
	got := make(chan batch, 16)
	var secret string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !webhook.Verify(secret, body, r.Header.Get("X-Presenced-Timestamp"), r.Header.Get("X-Presenced-Signature"), 0) {
			t.Errorf("bad signature on %s", body)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var b batch
		_ = json.Unmarshal(body, &b)
		got <- b
	}))
	defer recv.Close()

	var hook struct{ ID, Secret string }
	if st := call(t, "POST", s.URL+"/v1/webhooks", s.Admin, map[string]any{"url": recv.URL}, &hook); st != http.StatusCreated || hook.Secret == "" {
		t.Fatalf("create webhook: %d %+v", st, hook)
	}
	secret = hook.Secret
	var e apiErr
	if st := call(t, "POST", s.URL+"/v1/webhooks", s.Admin, map[string]any{"url": "ftp://x"}, &e); st != http.StatusBadRequest || e.Error.Code != "bad_request" {
		t.Fatalf("bad webhook url: %d %+v", st, e)
	}

	mustDial(t, s, userJWT(t, "a", time.Hour))
	deadline := time.After(15 * time.Second)
	for {
		select {
		case b := <-got:
			for _, c := range b.Changes {
				if c.User == "a" && c.Status == "online" {
					return
				}
			}
		case <-deadline:
			t.Fatal("no webhook batch announced a online")
		}
	}
}
