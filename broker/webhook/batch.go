package webhook

import (
	"encoding/json"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presenced/presenced/presence"
)

// payload is the JSON body of a delivery. It holds nothing that depends on
// the node or the attempt, so a batch delivered again, by any node, has
// the same bytes.
type payload struct {
	Webhook string            `json:"webhook"`
	Batch   string            `json:"batch"`
	Changes []presence.Change `json:"changes"`
}

// batch is one POST's worth of stream messages. msgs are all the messages
// it covers, skipped ones included, in stream order: acknowledging the last
// acknowledges them all.
type batch struct {
	webhook string
	id      string
	msgs    []jetstream.Msg
	changes int
	body    []byte
}

// batchID names the batch of the stream messages first to last: the same
// messages make the same id on every node and after any restart.
func batchID(first, last uint64) string {
	return strconv.FormatUint(first, 10) + "-" + strconv.FormatUint(last, 10)
}

// newBatch encodes the changes among msgs (whose stream sequences are
// seqs) for webhook id. body is nil when no change is left to send.
func newBatch(id string, msgs []jetstream.Msg, seqs []uint64, changes []presence.Change) (*batch, error) {
	b := &batch{webhook: id, id: batchID(seqs[0], seqs[len(seqs)-1]), msgs: msgs, changes: len(changes)}
	if len(changes) == 0 {
		return b, nil
	}
	body, err := json.Marshal(payload{Webhook: id, Batch: b.id, Changes: changes})
	if err != nil {
		return nil, err
	}
	b.body = body
	return b, nil
}

func (b *batch) last() jetstream.Msg { return b.msgs[len(b.msgs)-1] }
