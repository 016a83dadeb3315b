package client

import (
	"math/rand/v2"
	"time"
)

// backoff returns the wait before reconnect attempt n (0-based): a uniform
// draw between half and all of min(lo·2ⁿ, hi). The jitter spreads the
// reconnects of many clients after a node goes away.
func backoff(n int, lo, hi time.Duration, rnd func(int64) int64) time.Duration {
	step := hi
	if n < 32 && lo<<n < hi && lo<<n > 0 {
		step = lo << n
	}
	half := step / 2
	return half + time.Duration(rnd(int64(step-half)+1))
}

// jitter is the random source of backoff.
func jitter(n int64) int64 { return rand.Int64N(n) }
