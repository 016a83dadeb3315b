package protocol

import (
	"errors"
	"fmt"
)

// ErrorCode is the machine-readable "code" of an error frame.
type ErrorCode string

// Error codes. A request that fails gets an error frame with its id; the
// connection stays open unless a close code says otherwise.
const (
	// CodeBadRequest: the frame is not valid JSON, a field has the wrong
	// type, a required field is missing, a field does not belong to the op,
	// or a value is out of range (group id, status, text length...).
	CodeBadRequest ErrorCode = "bad_request"
	// CodeUnknownOp: the op is not one of the client ops of this version.
	CodeUnknownOp ErrorCode = "unknown_op"
	// CodeUnauthorized: the token (on connect or in refresh) is not valid.
	CodeUnauthorized ErrorCode = "unauthorized"
	// CodeTokenExpired: the token has expired; refresh came too late.
	CodeTokenExpired ErrorCode = "token_expired"
	// CodeForbidden: the caller may not do this, such as watching a group it
	// is not a member of, or it lost that right during a subscription.
	CodeForbidden ErrorCode = "forbidden"
	// CodeNotFound: the group or user does not exist, or the group is not
	// subscribed (unsubscribe).
	CodeNotFound ErrorCode = "not_found"
	// CodeRateLimited: the connection sends ops faster than allowed; the op
	// was not performed. Persisting gets the connection closed (4008).
	CodeRateLimited ErrorCode = "rate_limited"
	// CodeTooManySubscriptions: the connection already holds the maximum
	// number of subscriptions.
	CodeTooManySubscriptions ErrorCode = "too_many_subscriptions"
	// CodeFrameTooLarge: the frame exceeds the maximum frame size.
	CodeFrameTooLarge ErrorCode = "frame_too_large"
	// CodeInternal: the server failed; the request may be retried.
	CodeInternal ErrorCode = "internal"
	// CodeUnavailable: the presence store could not be reached (a leader
	// election, a lost quorum); retry in a moment.
	CodeUnavailable ErrorCode = "unavailable"
)

// Valid reports whether c is one of the error codes of this version.
func (c ErrorCode) Valid() bool {
	switch c {
	case CodeBadRequest, CodeUnknownOp, CodeUnauthorized, CodeTokenExpired,
		CodeForbidden, CodeNotFound, CodeRateLimited, CodeTooManySubscriptions,
		CodeFrameTooLarge, CodeInternal, CodeUnavailable:
		return true
	}
	return false
}

// Error is an error that travels in an error frame: a code and a message
// for people. Decoding reports invalid client frames as *Error, and the Go
// client returns the server's error frames as *Error; read it with
// errors.As.
type Error struct {
	Code    ErrorCode
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Message == "" {
		return "protocol: " + string(e.Code)
	}
	return "protocol: " + string(e.Code) + ": " + e.Message
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the *Error in err's chain, or CodeInternal when
// there is none. It is what a server puts in the error frame for err.
func CodeOf(err error) ErrorCode {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeInternal
}
