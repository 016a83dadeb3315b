package ddp_test

import (
	"encoding/json"

	"github.com/presenced/presenced/broker/compat/ddp"
)

type ddpConfig = ddp.Config

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
