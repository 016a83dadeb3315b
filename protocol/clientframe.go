package protocol

import (
	"strconv"
	"unicode/utf8"
)

// ClientFrame is any client → server frame. Op says which fields apply:
//
//	subscribe       Group (required), Rev, Epoch, CountsOnly
//	unsubscribe     Group (required)
//	set_status      Status, Text, ExpiresIn
//	query           Users (required, 1 to MaxQueryUsers)
//	watch_counts    Groups (none = every group the caller may see)
//	unwatch_counts  -
//	ping            -
//	refresh         Token (required)
//
// Every op takes ID. A field that does not apply to the op must be zero.
type ClientFrame struct {
	Op Op
	// ID is chosen by the client and echoed in the reply; 0 means none, and
	// the reply then carries none either.
	ID uint64

	// Group is the group to subscribe to or unsubscribe from.
	Group string
	// Rev asks to resume after this revision (0: no resume).
	Rev uint64
	// Epoch is the epoch the revision belongs to.
	Epoch string
	// CountsOnly subscribes to the group's counts instead of its members.
	CountsOnly bool

	// Status is the manual status to set: "" keeps the current one (only
	// Text changes), StatusOnline clears the manual status, StatusOffline
	// appears offline while connected.
	Status Status
	// Text is the status message, at most MaxStatusText bytes.
	Text string
	// ExpiresIn is how long, in seconds, the manual status and text last; 0
	// for no expiry.
	ExpiresIn int64

	// Users are the user ids a query asks about.
	Users []string
	// Groups are the group ids a counts watch covers.
	Groups []string

	// Token is the new token of a refresh.
	Token string
}

// MaxEpochLen is the longest epoch a client may send back.
const MaxEpochLen = 64

// fieldSet is a bit set of clientField.
type fieldSet uint16

type clientField uint8

const (
	fieldOp clientField = iota
	fieldID
	fieldGroup
	fieldRev
	fieldEpoch
	fieldCountsOnly
	fieldStatus
	fieldText
	fieldExpiresIn
	fieldUsers
	fieldGroups
	fieldToken
	numFields
)

var fieldNames = [numFields]string{
	fieldOp:         "op",
	fieldID:         "id",
	fieldGroup:      "group",
	fieldRev:        "rev",
	fieldEpoch:      "epoch",
	fieldCountsOnly: "counts_only",
	fieldStatus:     "status",
	fieldText:       "text",
	fieldExpiresIn:  "expires_in",
	fieldUsers:      "users",
	fieldGroups:     "groups",
	fieldToken:      "token",
}

func (f clientField) bit() fieldSet { return 1 << f }

func lookupField(name []byte) (clientField, bool) {
	switch string(name) {
	case "op":
		return fieldOp, true
	case "id":
		return fieldID, true
	case "group":
		return fieldGroup, true
	case "rev":
		return fieldRev, true
	case "epoch":
		return fieldEpoch, true
	case "counts_only":
		return fieldCountsOnly, true
	case "status":
		return fieldStatus, true
	case "text":
		return fieldText, true
	case "expires_in":
		return fieldExpiresIn, true
	case "users":
		return fieldUsers, true
	case "groups":
		return fieldGroups, true
	case "token":
		return fieldToken, true
	}
	return 0, false
}

// opFields returns the fields op accepts besides op and id.
func opFields(op Op) fieldSet {
	switch op {
	case OpSubscribe:
		return fieldGroup.bit() | fieldRev.bit() | fieldEpoch.bit() | fieldCountsOnly.bit()
	case OpUnsubscribe:
		return fieldGroup.bit()
	case OpSetStatus:
		return fieldStatus.bit() | fieldText.bit() | fieldExpiresIn.bit()
	case OpQuery:
		return fieldUsers.bit()
	case OpWatchCounts:
		return fieldGroups.bit()
	case OpRefresh:
		return fieldToken.bit()
	}
	return 0
}

// setFields returns the fields of f that hold a non-zero value.
func (f *ClientFrame) setFields() fieldSet {
	var s fieldSet
	set := func(fl clientField, nonZero bool) {
		if nonZero {
			s |= fl.bit()
		}
	}
	set(fieldGroup, f.Group != "")
	set(fieldRev, f.Rev != 0)
	set(fieldEpoch, f.Epoch != "")
	set(fieldCountsOnly, f.CountsOnly)
	set(fieldStatus, f.Status != "")
	set(fieldText, f.Text != "")
	set(fieldExpiresIn, f.ExpiresIn != 0)
	set(fieldUsers, len(f.Users) != 0)
	set(fieldGroups, len(f.Groups) != 0)
	set(fieldToken, f.Token != "")
	return s
}

// Validate reports, as an *Error, what makes f an invalid frame: an unknown
// op (CodeUnknownOp), a field that does not apply to the op, a missing
// required field or a value out of range (CodeBadRequest).
func (f *ClientFrame) Validate() error {
	if err := checkOp(f.Op); err != nil {
		return err
	}
	if extra := f.setFields() &^ opFields(f.Op); extra != 0 {
		for fl := range numFields {
			if extra&fl.bit() != 0 {
				return Errorf(CodeBadRequest, "field %q does not apply to op %q", fieldNames[fl], f.Op)
			}
		}
	}
	switch f.Op {
	case OpSubscribe, OpUnsubscribe:
		if f.Group == "" {
			return Errorf(CodeBadRequest, "missing group")
		}
		if !ValidID(f.Group) {
			return Errorf(CodeBadRequest, "invalid group id %q", truncate(f.Group))
		}
		if len(f.Epoch) > MaxEpochLen || !utf8.ValidString(f.Epoch) {
			return Errorf(CodeBadRequest, "invalid epoch")
		}
	case OpSetStatus:
		if f.Status != "" && !f.Status.Valid() {
			return Errorf(CodeBadRequest, "invalid status %q", truncate(string(f.Status)))
		}
		if len(f.Text) > MaxStatusText {
			return Errorf(CodeBadRequest, "text longer than %d bytes", MaxStatusText)
		}
		if !utf8.ValidString(f.Text) {
			return Errorf(CodeBadRequest, "text is not valid UTF-8")
		}
		if f.ExpiresIn < 0 || f.ExpiresIn > MaxExpiresIn {
			return Errorf(CodeBadRequest, "expires_in out of range 0..%d", MaxExpiresIn)
		}
	case OpQuery:
		if len(f.Users) == 0 {
			return Errorf(CodeBadRequest, "missing users")
		}
		if len(f.Users) > MaxQueryUsers {
			return Errorf(CodeBadRequest, "more than %d users", MaxQueryUsers)
		}
		for _, u := range f.Users {
			if !ValidID(u) {
				return Errorf(CodeBadRequest, "invalid user id %q", truncate(u))
			}
		}
	case OpWatchCounts:
		if len(f.Groups) > MaxWatchGroups {
			return Errorf(CodeBadRequest, "more than %d groups", MaxWatchGroups)
		}
		for _, g := range f.Groups {
			if !ValidID(g) {
				return Errorf(CodeBadRequest, "invalid group id %q", truncate(g))
			}
		}
	case OpRefresh:
		if f.Token == "" {
			return Errorf(CodeBadRequest, "missing token")
		}
		if len(f.Token) > MaxTokenLen {
			return Errorf(CodeBadRequest, "token longer than %d bytes", MaxTokenLen)
		}
		if !utf8.ValidString(f.Token) {
			return Errorf(CodeBadRequest, "token is not valid UTF-8")
		}
	}
	return nil
}

func checkOp(op Op) error {
	switch {
	case op == "":
		return Errorf(CodeBadRequest, "missing op")
	case !op.ClientOp():
		return Errorf(CodeUnknownOp, "unknown op %q", truncate(string(op)))
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	for i := max; i > max-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "..."
		}
	}
	return s[:max] + "..."
}

// EncodeClientFrame validates f and encodes it as JSON. Zero-valued fields
// are left out.
func EncodeClientFrame(f ClientFrame) ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return AppendClientFrame(make([]byte, 0, 64), f), nil
}

// AppendClientFrame appends f as JSON to dst without validating it. Zero-valued
// fields are left out.
func AppendClientFrame(dst []byte, f ClientFrame) []byte {
	dst = append(dst, `{"op":`...)
	dst = appendString(dst, string(f.Op))
	dst = appendID(dst, f.ID)
	if f.Group != "" {
		dst = appendStringField(dst, "group", f.Group)
	}
	if f.Rev != 0 {
		dst = appendUintField(dst, "rev", f.Rev)
	}
	if f.Epoch != "" {
		dst = appendStringField(dst, "epoch", f.Epoch)
	}
	if f.CountsOnly {
		dst = append(dst, `,"counts_only":true`...)
	}
	if f.Status != "" {
		dst = appendStringField(dst, "status", string(f.Status))
	}
	if f.Text != "" {
		dst = appendStringField(dst, "text", f.Text)
	}
	if f.ExpiresIn != 0 {
		dst = appendName(dst, "expires_in")
		dst = strconv.AppendInt(dst, f.ExpiresIn, 10)
	}
	if len(f.Users) != 0 {
		dst = appendStringArray(dst, "users", f.Users)
	}
	if len(f.Groups) != 0 {
		dst = appendStringArray(dst, "groups", f.Groups)
	}
	if f.Token != "" {
		dst = appendStringField(dst, "token", f.Token)
	}
	return append(dst, '}')
}

func appendStringArray(dst []byte, name string, ss []string) []byte {
	dst = appendName(dst, name)
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}
