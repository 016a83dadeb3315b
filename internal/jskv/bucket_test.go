package jskv_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/internal/jskv"
	"github.com/presenced/presenced/internal/natstest"
)

// TestStreamWaitsForAStreamNotYetKnown looks up a stream that appears a
// moment later, as a stream created through another server of a forming
// cluster does: the lookup finds it. Before, "stream not found" returned at
// once and failed a node's start (seen as "history: open bucket
// presenced_history_fine: stream not found" while a cluster formed).
func TestStreamWaitsForAStreamNotYetKnown(t *testing.T) {
	nc := natstest.Connect(t, natstest.Start(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	created := make(chan error, 1)
	time.AfterFunc(300*time.Millisecond, func() {
		_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "late", Subjects: []string{"late.>"}})
		created <- err
	})
	st, err := jskv.Stream(ctxT(t), js, "late")
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if name := st.CachedInfo().Config.Name; name != "late" {
		t.Fatalf("found %q", name)
	}

	// A stream that never comes is not found for as long as ctx lasts, and
	// the error says what the last answer was.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = jskv.Stream(ctx, js, "never")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "stream not found") {
		t.Fatalf("lookup of a stream that never comes: %v", err)
	}
}
