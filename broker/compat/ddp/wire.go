package ddp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the DDP version this server speaks: DDP is Meteor's
// Distributed Data Protocol
// (https://github.com/meteor/meteor/blob/devel/packages/ddp/DDP.md).
const Version = "1"

// Message types ("msg") of DDP 1.
const (
	msgConnect   = "connect"   // client: version, support → connected or failed
	msgConnected = "connected" // server: session
	msgFailed    = "failed"    // server: version it would speak; the socket closes
	msgPing      = "ping"      // either side, optional id
	msgPong      = "pong"      // either side, the ping's id
	msgMethod    = "method"    // client: id, method, params → result, updated
	msgResult    = "result"    // server: id, result or error
	msgUpdated   = "updated"   // server: methods whose writes are all sent
	msgSub       = "sub"       // client: id, name, params → ready or nosub
	msgUnsub     = "unsub"     // client: id → nosub
	msgReady     = "ready"     // server: subs
	msgNosub     = "nosub"     // server: id, error if the sub failed
	msgAdded     = "added"     // server: collection, id, fields
	msgChanged   = "changed"   // server: collection, id, fields
	msgRemoved   = "removed"   // server: collection, id
	msgError     = "error"     // server: reason, offendingMessage
)

// Reasons of DDP's error message, as Meteor's server words them.
const (
	reasonBadRequest       = "Bad request"
	reasonMustConnect      = "Must connect first"
	reasonAlreadyConnected = "Already connected"
	reasonMalformedMethod  = "Malformed method invocation"
	reasonMalformedSub     = "Malformed subscription"
)

// message is one message from a client, decoded as far as its type.
type message struct {
	raw    json.RawMessage // the message as sent: offendingMessage
	typ    string          // "msg"
	fields map[string]json.RawMessage
}

// errNotObject: the text is not a JSON object. Meteor discards such
// messages and answers "Bad request" without offendingMessage, since
// nothing parsed.
var errNotObject = errors.New("ddp: not a JSON object")

// decode parses one DDP message. A message whose "msg" is missing or not
// a string decodes with an empty typ.
func decode(data []byte) (message, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return message{}, errNotObject
	}
	m := message{raw: compact(data), fields: fields}
	m.typ, _ = m.str("msg")
	return m, nil
}

func compact(data []byte) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, data) != nil {
		return json.RawMessage(data)
	}
	return b.Bytes()
}

// has reports whether the message has the field.
func (m message) has(field string) bool {
	_, ok := m.fields[field]
	return ok
}

// str returns a string field, and whether it is one.
func (m message) str(field string) (string, bool) {
	raw, ok := m.fields[field]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// array returns an array field (absent: nil, true), and whether it is
// absent or an array.
func (m message) array(field string) ([]json.RawMessage, bool) {
	raw, ok := m.fields[field]
	if !ok {
		return nil, true
	}
	var a []json.RawMessage
	if json.Unmarshal(raw, &a) != nil || a == nil {
		return nil, false
	}
	return a, true
}

// strings returns a field that is an array of strings.
func (m message) strings(field string) ([]string, bool) {
	raw, ok := m.fields[field]
	if !ok {
		return nil, false
	}
	var a []string
	if json.Unmarshal(raw, &a) != nil || a == nil {
		return nil, false
	}
	return a, true
}

// marshal encodes v as JSON without escaping <, > and & (as JavaScript's
// JSON.stringify does).
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("ddp: encode %T: %v", v, err)) // only the types below are encoded
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

// serverID is the first frame Meteor's server sends: a message without
// "msg", which clients ignore.
var serverID = []byte(`{"server_id":"0"}`)

func connected(session string) []byte {
	return marshal(struct {
		Msg     string `json:"msg"`
		Session string `json:"session"`
	}{msgConnected, session})
}

func failed(version string) []byte {
	return marshal(struct {
		Msg     string `json:"msg"`
		Version string `json:"version"`
	}{msgFailed, version})
}

// ping and pong carry an id only when one was given.
func ping() []byte { return []byte(`{"msg":"ping"}`) }

func pong(id string, hasID bool) []byte {
	if !hasID {
		return []byte(`{"msg":"pong"}`)
	}
	return marshal(struct {
		Msg string `json:"msg"`
		ID  string `json:"id"`
	}{msgPong, id})
}

// result answers a method: with result (nil: undefined, which is left
// out) or with a Meteor error.
func result(id string, res any, err *meteorError) []byte {
	out := struct {
		Msg    string       `json:"msg"`
		ID     string       `json:"id"`
		Result any          `json:"result,omitempty"`
		Error  *meteorError `json:"error,omitempty"`
	}{Msg: msgResult, ID: id, Result: res, Error: err}
	return marshal(out)
}

func updated(ids ...string) []byte {
	return marshal(struct {
		Msg     string   `json:"msg"`
		Methods []string `json:"methods"`
	}{msgUpdated, ids})
}

func ready(ids ...string) []byte {
	return marshal(struct {
		Msg  string   `json:"msg"`
		Subs []string `json:"subs"`
	}{msgReady, ids})
}

func nosub(id string, err *meteorError) []byte {
	return marshal(struct {
		Msg   string       `json:"msg"`
		ID    string       `json:"id"`
		Error *meteorError `json:"error,omitempty"`
	}{msgNosub, id, err})
}

// errorMsg is DDP's error message: the server could not make sense of a
// message. offending is the message when it parsed, else nil.
func errorMsg(reason string, offending json.RawMessage) []byte {
	return marshal(struct {
		Msg              string          `json:"msg"`
		Reason           string          `json:"reason"`
		OffendingMessage json.RawMessage `json:"offendingMessage,omitempty"`
	}{msgError, reason, offending})
}

// document is an added, changed or removed message of a collection.
func document(typ, collection, id string, fields any) []byte {
	return marshal(struct {
		Msg        string `json:"msg"`
		Collection string `json:"collection"`
		ID         string `json:"id"`
		Fields     any    `json:"fields,omitempty"`
	}{typ, collection, id, fields})
}

// meteorError is a Meteor.Error as DDP carries it in a result or a nosub:
// {"isClientSafe":true,"error":<code>,"reason","details","message":
// "<reason> [<code>]","errorType":"Meteor.Error"}. The code is a number
// (403) or a string ("not-allowed").
type meteorError struct {
	IsClientSafe bool   `json:"isClientSafe"`
	Error        any    `json:"error"`
	Reason       string `json:"reason,omitempty"`
	Details      any    `json:"details,omitempty"`
	Message      string `json:"message"`
	ErrorType    string `json:"errorType"`
}

// meteorErr is new Meteor.Error(code, reason, details).
func meteorErr(code any, reason string, details any) *meteorError {
	msg := fmt.Sprintf("[%v]", code)
	if reason != "" {
		msg = reason + " " + msg
	}
	return &meteorError{IsClientSafe: true, Error: code, Reason: reason, Details: details, Message: msg, ErrorType: "Meteor.Error"}
}

// The Meteor errors this server answers with.
var (
	errLoggedOut      = meteorErr(403, "You've been logged out by the server. Please log in again.", nil)
	errSessionExpired = meteorErr(403, "Your session has expired. Please log in again.", nil)
	errUnrecognized   = meteorErr(400, "Unrecognized options for login request", nil)
	errMatchFailed    = meteorErr(400, "Match failed", nil)
	errInternal       = meteorErr(500, "Internal server error", nil)
	errNotAllowed     = meteorErr("not-allowed", "", nil)
	errInvalidEvent   = meteorErr("invalid-event-name", "", nil)
	errInvalidStatus  = meteorErr("error-invalid-status", "Valid status types include online, away, offline, and busy.", nil)
)

func errMethodNotFound(name string) *meteorError {
	return meteorErr(404, fmt.Sprintf("Method '%s' not found", name), nil)
}

func errSubNotFound(name string) *meteorError {
	return meteorErr(404, fmt.Sprintf("Subscription '%s' not found", name), nil)
}

func errInvalidUser(method string) *meteorError {
	return meteorErr("error-invalid-user", "Invalid user", map[string]string{"method": method})
}

// errTooManyRequests is the error of Rocket.Chat's DDP rate limiter.
func errTooManyRequests(waitMillis int64) *meteorError {
	secs := (waitMillis + 999) / 1000
	return meteorErr("too-many-requests",
		fmt.Sprintf("Error, too many requests. Please slow down. You must wait %d seconds before trying again.", secs),
		map[string]int64{"timeToReset": waitMillis})
}
