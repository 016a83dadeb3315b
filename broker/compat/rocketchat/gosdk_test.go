package rocketchat_test

import (
	"bytes"
	"net/url"
	"slices"
	"testing"

	"github.com/RocketChat/Rocket.Chat.Go.SDK/models"
	"github.com/RocketChat/Rocket.Chat.Go.SDK/rest"
)

// TestGoSDK drives the endpoints with Rocket.Chat's own Go client.
func TestGoSDK(t *testing.T) {
	w := newWorld(t)
	u, err := url.Parse(w.url)
	if err != nil {
		t.Fatal(err)
	}
	c := rest.NewClient(u, false)
	if err := c.Login(&models.UserCredentials{ID: callerID, Token: w.creds[callerID]}); err != nil {
		t.Fatal(err)
	}

	type user struct {
		ID       string `json:"_id"`
		Username string `json:"username"`
		Status   string `json:"status"`
	}
	ids := func(us []user) []string {
		var out []string
		for _, u := range us {
			out = append(out, u.ID)
		}
		return out
	}

	var online struct {
		rest.Status
		Online []user `json:"online"`
	}
	if err := c.Get("groups.online", url.Values{"_id": {groupID}}, &online); err != nil {
		t.Fatal(err)
	}
	if got := ids(online.Online); !slices.Equal(got, []string{testID, uniqueID}) {
		t.Errorf("groups.online: %v", got)
	}

	var presence struct {
		rest.Status
		Users []user `json:"users"`
		Full  bool   `json:"full"`
	}
	if err := c.Get("users.presence", url.Values{"ids": {testID + "," + uniqueID + "," + offlineID}}, &presence); err != nil {
		t.Fatal(err)
	}
	if got := ids(presence.Users); presence.Full || !slices.Equal(got, []string{testID, uniqueID}) {
		t.Errorf("users.presence: %v full=%v", got, presence.Full)
	}

	st, err := c.GetUserStatus("test")
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != testID || st.Status != "online" || st.Message != "Latest status" {
		t.Errorf("users.getStatus: %+v", st)
	}

	var ok rest.Status
	if err := c.Post("users.setStatus", bytes.NewBufferString(`{"status":"away","message":"brb"}`), &ok); err != nil {
		t.Fatal(err)
	}
	if st, err := c.GetUserStatus("caller"); err != nil || st.Status != "away" || st.Message != "brb" {
		t.Errorf("after setStatus: %+v %v", st, err)
	}

	// The SDK surfaces the vendor error text of a failure.
	var roles struct {
		rest.Status
		Users []user `json:"users"`
	}
	if err := c.Get("roles.getUsersInRole", url.Values{"role": {"admin"}}, &roles); err == nil ||
		err.Error() != "User does not have the permissions required for this action [error-unauthorized]" {
		t.Errorf("roles.getUsersInRole as a plain user: %v", err)
	}
	admin := rest.NewClient(u, false)
	if err := admin.Login(&models.UserCredentials{ID: adminID, Token: w.creds[adminID]}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Get("roles.getUsersInRole", url.Values{"role": {customRole}, "count": {"1"}}, &roles); err != nil {
		t.Fatal(err)
	}
	if got := ids(roles.Users); !slices.Equal(got, []string{aID}) {
		t.Errorf("roles.getUsersInRole: %v", got)
	}
}
