package client

import (
	"context"
	"time"

	"github.com/presenced/presenced/protocol"
)

// do sends f on the current connection, waiting for one if the client is
// reconnecting, and waits for the reply.
func (c *Client) do(ctx context.Context, f protocol.ClientFrame) (reply, error) {
	if err := f.Validate(); err != nil {
		return reply{}, err
	}
	cn, err := c.currentConn(ctx)
	if err != nil {
		return reply{}, err
	}
	req := &request{frame: f, reply: make(chan reply, 1)}
	if err := c.send(ctx, cn, req); err != nil {
		return reply{}, c.lostErr(err)
	}
	select {
	case r := <-req.reply:
		return r, r.err
	case <-cn.done:
		select {
		case r := <-req.reply:
			return r, r.err
		default:
		}
		return reply{}, c.lostErr(ErrConnectionLost)
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

// Subscribe subscribes to group's members and returns its snapshot. From
// then on the client applies the group's deltas to its member view
// (Members) and emits them as events, and restores the subscription after
// reconnects. Subscribing again replaces the group's state with a new
// snapshot. If ctx ends before the reply, the subscription may still take
// effect.
func (c *Client) Subscribe(ctx context.Context, group string) (Snapshot, error) {
	r, err := c.do(ctx, protocol.ClientFrame{Op: protocol.OpSubscribe, Group: group})
	if err != nil {
		return Snapshot{}, err
	}
	return r.snap, nil
}

// SubscribeCounts subscribes to group's counts only, for groups too big to
// list, and returns the current counts. Changes arrive as EventCounts and
// in Counts.
func (c *Client) SubscribeCounts(ctx context.Context, group string) (protocol.GroupCount, error) {
	r, err := c.do(ctx, protocol.ClientFrame{Op: protocol.OpSubscribe, Group: group, CountsOnly: true})
	if err != nil {
		return protocol.GroupCount{}, err
	}
	for _, gc := range r.frame.Groups {
		if gc.Group == group {
			return gc, nil
		}
	}
	return protocol.GroupCount{Group: group}, nil
}

// Unsubscribe ends the subscription to group. The client forgets the group
// at once, before the reply.
func (c *Client) Unsubscribe(ctx context.Context, group string) error {
	c.mu.Lock()
	_, had := c.groups[group]
	delete(c.groups, group)
	c.mu.Unlock()
	_, err := c.do(ctx, protocol.ClientFrame{Op: protocol.OpUnsubscribe, Group: group})
	if had && isCode(err, protocol.CodeNotFound) {
		// The server had already dropped it (a reconnect raced with us):
		// the group is unsubscribed either way.
		return nil
	}
	return err
}

// SetStatus sets the user's manual status and status text. status ""
// keeps the status and sets only the text; protocol.StatusOnline clears the
// manual status. expiresIn > 0 clears them after that long (whole seconds,
// rounded up).
func (c *Client) SetStatus(ctx context.Context, status protocol.Status, text string, expiresIn time.Duration) error {
	f := protocol.ClientFrame{Op: protocol.OpSetStatus, Status: status, Text: text}
	if expiresIn > 0 {
		f.ExpiresIn = int64((expiresIn + time.Second - 1) / time.Second)
	}
	_, err := c.do(ctx, f)
	return err
}

// Query returns the current status of users (at most
// protocol.MaxQueryUsers), in the order asked; users that are unknown or
// not visible to the caller are left out.
func (c *Client) Query(ctx context.Context, users []string) ([]protocol.Member, error) {
	if len(users) == 0 {
		return nil, nil
	}
	r, err := c.do(ctx, protocol.ClientFrame{Op: protocol.OpQuery, Users: users})
	if err != nil {
		return nil, err
	}
	return r.frame.Users, nil
}

// WatchCounts starts or replaces the counts watch of groups (none: every
// group the caller may see) and returns their counts. Changes arrive as
// EventCounts. The watch is restored after reconnects.
func (c *Client) WatchCounts(ctx context.Context, groups []string) ([]protocol.GroupCount, error) {
	r, err := c.do(ctx, protocol.ClientFrame{Op: protocol.OpWatchCounts, Groups: groups})
	if err != nil {
		return nil, err
	}
	return r.frame.Groups, nil
}

// UnwatchCounts ends the counts watch.
func (c *Client) UnwatchCounts(ctx context.Context) error {
	_, err := c.do(ctx, protocol.ClientFrame{Op: protocol.OpUnwatchCounts})
	return err
}

// Ping sends a ping op and waits for the pong.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.do(ctx, protocol.ClientFrame{Op: protocol.OpPing})
	return err
}

// Refresh hands the server a new token for this connection before the old
// one expires. Once accepted, it is also the token of later reconnects
// (unless Options.TokenFunc is set).
func (c *Client) Refresh(ctx context.Context, token string) error {
	_, err := c.do(ctx, protocol.ClientFrame{Op: protocol.OpRefresh, Token: token})
	return err
}
