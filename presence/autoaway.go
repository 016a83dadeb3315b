package presence

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/presenced/presenced/protocol"
)

// Auto-away: an online session idle for AutoAway counts as away. The owning
// node scans its own sessions every AutoAway/4 (not a timer per session) and
// rewrites those that crossed the line, so the change is a stream event like
// any other. Touch brings a session back at once.

func (e *Engine) autoAwayLoop() {
	every := max(e.cfg.AutoAway/4, time.Millisecond)
	for e.sleep(every, e.kicks.autoAway) {
		e.scanIdle()
	}
}

func (e *Engine) scanIdle() {
	now := e.clock.Now()
	for _, s := range e.ownSessions() {
		s.mu.Lock()
		idle := now.Sub(s.lastActive) >= e.cfg.AutoAway
		want := idle && s.status == protocol.StatusOnline
		change := want != s.auto && !s.closed
		s.mu.Unlock()
		if !change {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.LeaseTTL)
		err := s.put(ctx, func() { s.auto = want })
		cancel()
		if err != nil && err != ErrSessionClosed {
			e.log.Warn("presence: auto-away write failed", zap.String("session", s.id), zap.Error(err))
		}
	}
}
