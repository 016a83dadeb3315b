package membership

import "errors"

// Sentinel errors. Callers test them with errors.Is.
var (
	ErrNotFound     = errors.New("membership: not found")
	ErrExists       = errors.New("membership: already exists")
	ErrInvalid      = errors.New("membership: invalid")
	ErrConflict     = errors.New("membership: concurrent update")
	ErrUnauthorized = errors.New("membership: unauthorized")
	ErrTokenExpired = errors.New("membership: token expired")
)

// ValidationError says which field of an input is wrong and why. It wraps
// ErrInvalid.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string {
	return "membership: invalid " + e.Field + ": " + e.Message
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }
