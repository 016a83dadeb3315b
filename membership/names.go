package membership

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/internal/jskv"
)

// A username is unique across the cluster: a node's index alone cannot
// tell, since another node may be creating a user with the same name at
// the same moment. A user's name is claimed first, with a compare-and-set
// creation of its key (names.<hex of the name>, holding the user's id),
// and the user is written only once the claim is the user's. A rename
// claims the new name and gives the old one back; a deletion gives the
// name back.
//
// A claim whose holder no longer has the name (a create that failed after
// claiming, a deletion that could not give it back) is stale and taken
// over, but only once it is older than staleClaim: a create holds its
// claim before its user is stored. Names of users stored before claims
// existed have no claim; the index's check covers them.

// staleClaim is how old a claim must be before a holder without the name
// loses it: longer than any write of a user takes.
const staleClaim = time.Minute

// nameKey is the key of a username's claim. Usernames may hold '.', which
// a key splits on; hex keeps the key one token.
func nameKey(username string) string { return prefixNames + hex.EncodeToString([]byte(username)) }

// claimName makes username user's, or fails with a validation error when
// another user holds it.
func (s *Store) claimName(ctx context.Context, username, user string) error {
	key := nameKey(username)
	taken := invalid("username", "%q is taken", username)
	return s.contended(ctx, key, func(ctx context.Context, _ bool) error {
		_, err := s.put(ctx, key, user, new(uint64)) // create
		if err != ErrExists {
			return err
		}
		e, err := jskv.GetFromLeaderRetried(ctx, s.cfg.JetStream, s.kv, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return ErrConflict // given back meanwhile: create it again
		}
		if err != nil {
			return fmt.Errorf("membership: read %s: %w", key, err)
		}
		var holder string
		if err := json.Unmarshal(e.Value(), &holder); err != nil {
			return fmt.Errorf("membership: decode %s: %w", key, err)
		}
		if holder == user {
			return nil
		}
		if time.Since(e.Created()) < staleClaim || s.holds(ctx, holder, username) {
			return taken
		}
		rev := e.Revision()
		_, err = s.put(ctx, key, user, &rev)
		return err // ErrConflict: claimed again meanwhile, read it again
	})
}

// holds reports whether user is stored with username, as the stream's
// leader has it; an error reads as holding it.
func (s *Store) holds(ctx context.Context, user, username string) bool {
	e, err := jskv.GetFromLeaderRetried(ctx, s.cfg.JetStream, s.kv, userKey(user))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false
	}
	if err != nil {
		return true
	}
	var u User
	if err := json.Unmarshal(e.Value(), &u); err != nil {
		return true
	}
	return u.Username == username
}

// releaseName gives username back if user holds its claim: a deletion
// with a compare-and-set on the revision read, so that a claim taken over
// meanwhile stays. A failure leaves a claim that turns stale.
func (s *Store) releaseName(ctx context.Context, username, user string) {
	key := nameKey(username)
	e, err := jskv.GetFromLeaderRetried(ctx, s.cfg.JetStream, s.kv, key)
	if err != nil {
		return
	}
	var holder string
	if json.Unmarshal(e.Value(), &holder) != nil || holder != user {
		return
	}
	msg := nats.NewMsg("$KV." + s.cfg.Bucket + "." + key)
	msg.Header.Set("KV-Operation", "DEL")
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(e.Revision(), 10))
	_, _ = jskv.Send(ctx, s.pub, msg)
}
