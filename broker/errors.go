package broker

import "errors"

// Sentinel errors.
var (
	ErrConfig   = errors.New("broker: invalid config")
	ErrNotReady = errors.New("broker: not ready")
)
