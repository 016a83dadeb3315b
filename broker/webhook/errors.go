package webhook

import (
	"errors"
	"net/http"
	"strconv"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	ErrNotFound = errors.New("webhook: not found")
	ErrInvalid  = errors.New("webhook: invalid")
	ErrLimit    = errors.New("webhook: too many webhooks")
	ErrClosed   = errors.New("webhook: closed")
	// ErrConflict: an update lost to other writers of the webhook until
	// its deadline.
	ErrConflict = errors.New("webhook: concurrent update")
)

// Error codes of HTTPError, the same as the native API's.
const (
	CodeBadRequest  = "bad_request"
	CodeNotFound    = "not_found"
	CodeConflict    = "conflict"
	CodeTooLarge    = "too_large"
	CodeUnavailable = "unavailable"
)

// HTTPError is an error the REST handlers return for the caller to render
// as {"error":{"code","message"}} with Status. Any other error a handler
// returns is internal (or unavailable for a context deadline).
type HTTPError struct {
	Status  int
	Code    string
	Message string
}

func (e *HTTPError) Error() string { return e.Message }

// ValidationError says which field of an input is wrong and why. It wraps
// ErrInvalid.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string {
	return "webhook: invalid " + e.Field + ": " + e.Message
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// httpError maps the package's errors to an HTTPError; other errors pass
// through unchanged.
func httpError(err error) error {
	var he *HTTPError
	var ve *ValidationError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he
	case errors.As(err, &ve):
		return &HTTPError{http.StatusBadRequest, CodeBadRequest, ve.Field + ": " + ve.Message}
	case errors.As(err, &mbe):
		return &HTTPError{http.StatusRequestEntityTooLarge, CodeTooLarge, "body larger than " + strconv.FormatInt(mbe.Limit, 10) + " bytes"}
	case errors.Is(err, ErrNotFound):
		return &HTTPError{http.StatusNotFound, CodeNotFound, "webhook not found"}
	case errors.Is(err, ErrLimit):
		return &HTTPError{http.StatusConflict, CodeConflict, err.Error()}
	case errors.Is(err, ErrConflict):
		return &HTTPError{http.StatusConflict, CodeConflict, "concurrent update, retry"}
	case errors.Is(err, ErrClosed):
		return &HTTPError{http.StatusServiceUnavailable, CodeUnavailable, "webhooks are shutting down"}
	}
	return err
}
