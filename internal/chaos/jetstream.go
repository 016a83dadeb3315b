package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Streams of presenced's buckets (KV_ + bucket name).
const (
	presenceStream   = "KV_presenced_presence"
	membershipStream = "KV_presenced_membership"
)

// withJetStream calls fn with a JetStream context on the first of urls
// that answers, through the test network.
func withJetStream(ctx context.Context, n *Network, urls []string, fn func(nc *nats.Conn, js jetstream.JetStream) error) error {
	var errs []error
	for _, url := range urls {
		nc, err := natsConnect(n, url)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		js, err := jetstream.New(nc)
		if err == nil {
			err = fn(nc, js)
		}
		nc.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", url, err))
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// streamLeaders returns the leader of every stream, by server name.
func streamLeaders(ctx context.Context, n *Network, urls []string) (map[string]string, error) {
	out := map[string]string{}
	err := withJetStream(ctx, n, urls, func(_ *nats.Conn, js jetstream.JetStream) error {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		names := js.StreamNames(qctx)
		for name := range names.Name() {
			s, err := js.Stream(qctx, name)
			if err != nil {
				return err
			}
			info, err := s.Info(qctx)
			if err != nil {
				return err
			}
			if info.Cluster != nil {
				out[name] = info.Cluster.Leader
			}
		}
		return names.Err()
	})
	return out, err
}

// stepDown asks the leader of stream to hand over to server preferred.
func stepDown(ctx context.Context, n *Network, urls []string, stream, preferred string) error {
	body, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": preferred}})
	return withJetStream(ctx, n, urls, func(nc *nats.Conn, _ jetstream.JetStream) error {
		msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, body)
		if err != nil {
			return err
		}
		var resp struct {
			Success bool
			Error   *struct{ Description string }
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return err
		}
		if !resp.Success {
			if resp.Error != nil {
				return errors.New(resp.Error.Description)
			}
			return fmt.Errorf("step down %s: %s", stream, msg.Data)
		}
		return nil
	})
}

// election is what watchElection saw: how long after the fault a new
// leader led the stream, or why none was seen.
type election struct {
	took time.Duration
	err  error
}

func (el election) String() string {
	if el.err != nil {
		return fmt.Sprintf("presence stream: no new leader seen in %s: %v", secs(el.took), el.err)
	}
	return fmt.Sprintf("presence stream led again %s after the kill", secs(el.took))
}

// watchElection polls, in a goroutine of its own and for at most 30 s,
// through the first of urls that answers, until a server other than old
// leads stream, and then sends how long after from that was first seen. A
// poll waits 250 ms for its answer, and polls are 50 ms apart: the figure
// is up to 300 ms late.
func watchElection(ctx context.Context, n *Network, urls []string, stream, old string, from time.Time) <-chan election {
	out := make(chan election, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := withJetStream(ctx, n, urls, func(_ *nats.Conn, js jetstream.JetStream) error {
			for {
				qctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
				s, err := js.Stream(qctx, stream)
				if err == nil {
					var info *jetstream.StreamInfo
					if info, err = s.Info(qctx); err == nil && info.Cluster != nil &&
						info.Cluster.Leader != "" && info.Cluster.Leader != old {
						cancel()
						return nil
					}
				}
				cancel()
				if ctx.Err() != nil {
					return ctx.Err()
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
		out <- election{took: time.Since(from), err: err}
	}()
	return out
}
