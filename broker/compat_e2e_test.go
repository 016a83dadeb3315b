package broker_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/protocol"
)

// TestStatusOverWebSocketSeenByEveryVendorAPI sets a status over the
// WebSocket and reads it back through the Rocket.Chat, CometChat and
// Bitrix24 endpoints of the same server.
func TestStatusOverWebSocketSeenByEveryVendorAPI(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	var tokA, apiKey struct{ Token string }
	call(t, "POST", s.URL+"/v1/tokens", s.Admin, map[string]any{"userId": "a", "scopes": []string{"connect"}}, &tokA)
	call(t, "POST", s.URL+"/v1/tokens", s.Admin, map[string]any{"scopes": []string{"membership:read"}}, &apiKey)

	b := mustDial(t, s, userJWT(t, "b", time.Hour))
	if r := b.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusBusy, Text: "deep work"}); r.Op != protocol.OpOK {
		t.Fatalf("set_status: %+v", r)
	}
	for deadline := time.Now().Add(5 * time.Second); s.Engine().Status("b").Status != protocol.StatusBusy; {
		if time.Now().After(deadline) {
			t.Fatal("busy never applied")
		}
		time.Sleep(5 * time.Millisecond)
	}

	get := func(path string, hdr http.Header, out any) int {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header = hdr
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp.StatusCode
	}
	rc := http.Header{"X-User-Id": {"a"}, "X-Auth-Token": {tokA.Token}}

	var presence struct {
		Users []struct{ ID, Status, StatusText string } `json:"users"`
	}
	if st := get("/api/v1/users.presence?ids=b", rc, &presence); st != 200 || len(presence.Users) != 1 || presence.Users[0].Status != "busy" {
		t.Fatalf("Rocket.Chat users.presence: %d %+v", st, presence)
	}
	var online struct {
		Online []struct {
			ID       string `json:"_id"`
			Username string `json:"username"`
		} `json:"online"`
	}
	if st := get("/api/v1/groups.online?_id=team", rc, &online); st != 200 || len(online.Online) != 1 || online.Online[0].ID != "b" {
		t.Fatalf("Rocket.Chat groups.online: %d %+v", st, online)
	}
	var cc struct {
		Data []struct{ UID, Status string } `json:"data"`
	}
	if st := get("/v3/groups/team/members?status=available", http.Header{"Apikey": {apiKey.Token}}, &cc); st != 200 || len(cc.Data) != 1 || cc.Data[0].UID != "b" || cc.Data[0].Status != "available" {
		t.Fatalf("CometChat members: %d %+v", st, cc)
	}
	g, _ := s.Store().Index().Group("team")
	ua, _ := s.Store().Index().User("a")
	var bx struct {
		Result []struct{ USER_ID, ROLE string } `json:"result"`
		Time   map[string]any                   `json:"time"`
	}
	path := "/rest/" + strconv.FormatInt(ua.Seq, 10) + "/" + tokA.Token + "/sonet_group.user.get?ID=" + strconv.FormatInt(g.Seq, 10)
	if st := get(path, http.Header{}, &bx); st != 200 || len(bx.Result) != 2 || bx.Time == nil {
		t.Fatalf("Bitrix24 sonet_group.user.get: %d %+v", st, bx)
	}
}

// TestSetStatusMessageKeepsManualStatus: a Rocket.Chat users.setStatus with
// only a message changes the text and keeps a manual busy set elsewhere.
func TestSetStatusMessageKeepsManualStatus(t *testing.T) {
	s := startServer(t, "")
	seedTeam(t, s)
	var tokB struct{ Token string }
	call(t, "POST", s.URL+"/v1/tokens", s.Admin, map[string]any{"userId": "b", "scopes": []string{"connect"}}, &tokB)
	b := mustDial(t, s, userJWT(t, "b", time.Hour))
	b.reply(protocol.ClientFrame{Op: protocol.OpSetStatus, Status: protocol.StatusBusy, Text: "call"})

	req, _ := http.NewRequest("POST", s.URL+"/api/v1/users.setStatus", strings.NewReader(`{"message":"still on a call"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User-Id", "b")
	req.Header.Set("X-Auth-Token", tokB.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("users.setStatus: %d", resp.StatusCode)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st := s.Engine().Status("b")
		if st.Text == "still on a call" {
			if st.Status != protocol.StatusBusy {
				t.Fatalf("status %s after a message-only setStatus, want busy", st.Status)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("text never changed: %+v", st)
		}
	}
}
