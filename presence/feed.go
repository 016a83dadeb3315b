package presence

import (
	"go.uber.org/zap"
)

// publishChanges publishes status changes on the change feed. The index
// hands them only to the leader of the revision that caused them (the live
// node with the smallest id among the leases), so exactly one node publishes
// each change while leases are current.
func (e *Engine) publishChanges(cs []Change) {
	var b []byte
	for _, c := range cs {
		b = c.appendJSON(b[:0]) // Publish copies it
		if err := e.cfg.Conn.Publish(SubjectChanges+c.User, b); err != nil {
			e.log.Warn("presence: change feed publish failed", zap.Error(err))
			return
		}
	}
}
