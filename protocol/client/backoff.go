package client

import "math/rand/v2"

// jitter is the random source of the reconnect backoff (protocol.Backoff).
var jitter = rand.Float64
