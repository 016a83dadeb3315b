package protocol

import "encoding/json"

// ServerFrame is any server → client frame, as DecodeServerFrame reads it.
// Op says which fields apply:
//
//	hello     V, Session, User, Node, Expires
//	snapshot  ID, Group, Rev, Epoch, Fresh, Online, Total, Members
//	resumed   ID, Group, Rev, Epoch, Online, Total, Changes
//	delta     Group, Rev, Online, Total, Changes
//	counts    ID (replies only), Groups
//	statuses  ID, Users
//	ok, pong  ID
//	error     ID (replies) or Group (end of a subscription), Code, Message
type ServerFrame struct {
	Op Op     `json:"op"`
	ID uint64 `json:"id,omitempty"`

	V       int    `json:"v,omitempty"`
	Session string `json:"session,omitempty"`
	User    string `json:"user,omitempty"`
	Node    string `json:"node,omitempty"`
	Expires int64  `json:"expires,omitempty"`

	Group   string   `json:"group,omitempty"`
	Rev     uint64   `json:"rev,omitempty"`
	Epoch   string   `json:"epoch,omitempty"`
	Fresh   bool     `json:"fresh,omitempty"`
	Online  int      `json:"online,omitempty"`
	Total   int      `json:"total,omitempty"`
	Members []Member `json:"members,omitempty"`
	Changes []Member `json:"changes,omitempty"`

	Groups []GroupCount `json:"groups,omitempty"`
	Users  []Member     `json:"users,omitempty"`

	Code    ErrorCode `json:"code,omitempty"`
	Message string    `json:"message,omitempty"`
}

// DecodeServerFrame parses a server frame. Unlike DecodeClientFrame it is
// lenient: unknown fields are ignored, because a server may add fields to
// its frames within a version. An op this package does not know is an
// *Error with CodeUnknownOp, which a client should skip; anything that is
// not a JSON object with an op is CodeBadRequest.
func DecodeServerFrame(data []byte) (ServerFrame, error) {
	var f ServerFrame
	if err := json.Unmarshal(data, &f); err != nil {
		return ServerFrame{}, Errorf(CodeBadRequest, "invalid server frame: %v", err)
	}
	switch {
	case f.Op == "":
		return f, Errorf(CodeBadRequest, "missing op")
	case !f.Op.ServerOp():
		return f, Errorf(CodeUnknownOp, "unknown op %q", truncate(string(f.Op)))
	}
	return f, nil
}

// Hello returns the content of a hello frame.
func (f *ServerFrame) Hello() Hello {
	return Hello{Session: f.Session, User: f.User, Node: f.Node, Expires: f.Expires}
}

// Err returns the *Error an error frame carries, or nil for other frames.
func (f *ServerFrame) Err() *Error {
	if f.Op != OpError {
		return nil
	}
	return &Error{Code: f.Code, Message: f.Message}
}

// Counts returns the group counts a snapshot, resumed or delta frame
// carries.
func (f *ServerFrame) Counts() GroupCount {
	return GroupCount{Group: f.Group, Online: f.Online, Total: f.Total, Rev: f.Rev}
}
