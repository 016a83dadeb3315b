package broker

import "errors"

// Sentinel errors.
var (
	ErrConfig   = errors.New("broker: invalid config")
	ErrNotReady = errors.New("broker: not ready")
	// ErrStopUnfinished: Shutdown's context ended before a step of the
	// way down finished; the error names the step.
	ErrStopUnfinished = errors.New("not finished")
)
