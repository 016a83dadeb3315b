package ddp_test

import (
	"context"
	"errors"
	"testing"

	"github.com/presenced/presenced/broker/compat/ddp"
	"github.com/presenced/presenced/membership"
	"github.com/presenced/presenced/presence"
)

func TestConfigValidated(t *testing.T) {
	auth := func(context.Context, string) (membership.Credential, error) { return membership.Credential{}, nil }
	ix := &membership.Index{}
	for name, cfg := range map[string]ddp.Config{
		"no auth":       {Presence: &presence.Engine{}, Users: ix, Visibility: &membership.Authority{}},
		"no presence":   {Auth: auth, Users: ix, Visibility: &membership.Authority{}},
		"no users":      {Auth: auth, Presence: &presence.Engine{}, Visibility: &membership.Authority{}},
		"no visibility": {Auth: auth, Presence: &presence.Engine{}, Users: ix},
		"negative":      {Auth: auth, Presence: &presence.Engine{}, Users: ix, Visibility: &membership.Authority{}, OpsPerSecond: -1},
	} {
		if _, err := ddp.New(cfg); !errors.Is(err, ddp.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}
