package membership_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/internal/natstest"
	"github.com/presenced/presenced/membership"
)

// unansweredJS hands out buckets whose first puts get no answer, as a
// replicated stream electing its leader gives none.
type unansweredJS struct {
	jetstream.JetStream
	unanswered atomic.Int32
}

func (j *unansweredJS) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := j.JetStream.CreateKeyValue(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &unansweredKV{KeyValue: kv, js: j}, nil
}

type unansweredKV struct {
	jetstream.KeyValue
	js *unansweredJS
}

func (kv *unansweredKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if kv.js.unanswered.Add(-1) >= 0 {
		return 0, jetstream.ErrNoStreamResponse
	}
	return kv.KeyValue.Put(ctx, key, value)
}

// TestOpenWaitsOutAnUnansweredWrite opens a store whose first writes (the
// built-in roles) get no answer: Open asks again and succeeds. Before, a
// node of a forming cluster failed to start with "membership: write
// roles.admin: nats: no response from stream".
func TestOpenWaitsOutAnUnansweredWrite(t *testing.T) {
	js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	flaky := &unansweredJS{JetStream: js}
	flaky.unanswered.Store(3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := membership.Open(ctx, membership.Config{JetStream: flaky})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer st.Close()
	for _, r := range membership.BuiltinRoles {
		if got, ok := st.Index().Role(r.ID); !ok || got != r {
			t.Errorf("built-in role %s: %+v, %v", r.ID, got, ok)
		}
	}
}
