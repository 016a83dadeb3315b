package protocol

import "time"

// Backoff is the wait before retry number attempt (0 for the first retry)
// that clients of this protocol use to reconnect, and that the broker uses
// for its own retries (webhook deliveries): step = min(lo·2^attempt, hi),
// jittered down by up to half with r in [0,1), so the result lies in
// (step/2, step]. The jitter spreads the retries of many clients after a
// node goes away.
func Backoff(attempt int, lo, hi time.Duration, r float64) time.Duration {
	step := hi
	if attempt < 32 && lo<<attempt < hi && lo<<attempt > 0 {
		step = lo << attempt
	}
	return step - time.Duration(r*float64(step/2))
}
