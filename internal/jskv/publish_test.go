package jskv_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/internal/natstest"
)

// TestRefusedCopyOfAStoredWrite: after a leader's loss, a copy of a
// compare-and-set write can be refused ("wrong last sequence") while the
// write itself was stored, and the refusal can be the answer that reaches
// the sender; a delete then read as "not found" and a creation as "exists".
// A refused key write whose key's last entry carries its Nats-Msg-Id was
// stored: Send answers its revision. The test sends a stored creation
// again after the duplicate window, which the stream refuses the same way.
func TestRefusedCopyOfAStoredWrite(t *testing.T) {
	nc := natstest.Connect(t, natstest.Start(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "KV_b")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.Duplicates = 100 * time.Millisecond
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	pub, err := jskv.Publisher(js)
	if err != nil {
		t.Fatal(err)
	}
	var create uint64
	m := jskv.KeyWrite(kv.Bucket(), "k", []byte("v"), &create)
	first, err := jskv.Send(ctx, pub, m)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // past the duplicate window
	again, err := jskv.Send(ctx, pub, m)
	if err != nil || again.Sequence != first.Sequence {
		t.Fatalf("the stored creation sent again: %+v, %v; want revision %d", again, err, first.Sequence)
	}
	// Another creation of the key is refused: it was not stored.
	if _, err := jskv.Send(ctx, pub, jskv.KeyWrite(kv.Bucket(), "k", []byte("w"), &create)); !jskv.WrongSequence(err) {
		t.Fatalf("another creation of k: %v, want wrong sequence", err)
	}
}
