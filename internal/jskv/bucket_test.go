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

// TestCreateStreamAgainWithItsReservation: a stream with a byte limit
// reserves that many bytes of JetStream's storage. A node that starts
// again asks to create its stream again, with the same configuration;
// nats-server counts the reservation of the stream it recovered once more
// against that create, and refuses it ("insufficient storage resources",
// 10047) once the disk's free space no longer holds twice the limit.
// The node then could not start on a disk where it had run, and the
// stream needs no change: CreateStream must bind it.
func TestCreateStreamAgainWithItsReservation(t *testing.T) {
	dir := t.TempDir()
	cfg := jetstream.StreamConfig{Name: "reserved", Subjects: []string{"reserved.>"}, Storage: jetstream.FileStorage,
		MaxBytes: 1 << 30, MaxMsgs: 1000, MaxAge: time.Hour}
	for i := range 2 {
		srv := natstest.StartWith(t, natstest.Options{StoreDir: dir, MaxStore: 3 << 29}) // 1.5 GiB
		js, err := jetstream.New(natstest.Connect(t, srv))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		st, err := jskv.CreateStream(ctx, js, cfg)
		cancel()
		if err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
		if got := st.CachedInfo().Config; got.MaxBytes != cfg.MaxBytes {
			t.Fatalf("start %d: MaxBytes %d", i+1, got.MaxBytes)
		}
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	// A configuration that asks for more than the storage holds is still
	// refused, not bound.
	srv := natstest.StartWith(t, natstest.Options{StoreDir: dir, MaxStore: 3 << 29})
	js, err := jetstream.New(natstest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	bigger := cfg
	bigger.MaxBytes = 2 << 30
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := jskv.CreateStream(ctx, js, bigger); err == nil {
		t.Fatal("a stream that needs more than the storage holds was bound")
	}
}
