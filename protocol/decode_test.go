package protocol

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

var allCloseCodes = []int{CloseNormal, CloseGoingAway, ClosePolicy, CloseFrameTooBig, CloseTokenExpired,
	CloseUnauthorized, CloseRateLimited, CloseSlowConsumer, CloseIdleTimeout, CloseProtocolError, CloseUnavailable}

var allErrorCodes = []ErrorCode{CodeBadRequest, CodeUnknownOp, CodeUnauthorized, CodeTokenExpired, CodeForbidden,
	CodeNotFound, CodeRateLimited, CodeTooManySubscriptions, CodeFrameTooLarge, CodeInternal, CodeUnavailable}

func itoa(n int) string { return strconv.Itoa(n) }

func TestDecodeClientFrameAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ClientFrame
	}{
		{"whitespace", " {\n\t\"op\" : \"ping\" , \"id\" : 7 }\r\n", ClientFrame{Op: OpPing, ID: 7}},
		{"no id", `{"op":"ping"}`, ClientFrame{Op: OpPing}},
		{"null is absent", `{"op":"subscribe","id":1,"group":"g1","rev":null,"epoch":null}`,
			ClientFrame{Op: OpSubscribe, ID: 1, Group: "g1"}},
		{"explicit zero values", `{"op":"subscribe","id":1,"group":"g1","rev":0,"epoch":"","counts_only":false}`,
			ClientFrame{Op: OpSubscribe, ID: 1, Group: "g1"}},
		{"escaped key and value", `{"\u006fp":"set_status","text":"a\"b\\c\/\n\u00e9\ud83d\ude00"}`,
			ClientFrame{Op: OpSetStatus, Text: "a\"b\\c/\né😀"}},
		{"lone surrogate", `{"op":"set_status","text":"\ud800x"}`, ClientFrame{Op: OpSetStatus, Text: "\uFFFDx"}},
		{"max id", `{"op":"ping","id":18446744073709551615}`, ClientFrame{Op: OpPing, ID: 1<<64 - 1}},
		{"status only", `{"op":"set_status","id":3,"status":"away"}`, ClientFrame{Op: OpSetStatus, ID: 3, Status: StatusAway}},
		{"offline is invisible", `{"op":"set_status","status":"offline"}`, ClientFrame{Op: OpSetStatus, Status: StatusOffline}},
		{"empty groups", `{"op":"watch_counts","id":5,"groups":[]}`, ClientFrame{Op: OpWatchCounts, ID: 5, Groups: []string{}}},
		{"max group id", `{"op":"unsubscribe","group":"` + strings.Repeat("a", 64) + `"}`,
			ClientFrame{Op: OpUnsubscribe, Group: strings.Repeat("a", 64)}},
		{"max text", `{"op":"set_status","text":"` + strings.Repeat("é", MaxStatusText/2) + `"}`,
			ClientFrame{Op: OpSetStatus, Text: strings.Repeat("é", MaxStatusText/2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeClientFrame([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeClientFrame(%s): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeClientFrame(%s)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodeClientFrameRejects(t *testing.T) {
	users := func(n int) string {
		us := make([]string, n)
		for i := range us {
			us[i] = `"u` + itoa(i) + `"`
		}
		return "[" + strings.Join(us, ",") + "]"
	}
	tests := []struct {
		name   string
		in     string
		code   ErrorCode
		wantID uint64 // the id the error reply can echo
	}{
		{"empty", ``, CodeBadRequest, 0},
		{"not an object", `["op","ping"]`, CodeBadRequest, 0},
		{"truncated", `{"op":"ping","id":7`, CodeBadRequest, 0},
		{"trailing data", `{"op":"ping"}{}`, CodeBadRequest, 0},
		{"trailing comma", `{"op":"ping",}`, CodeBadRequest, 0},
		{"single quotes", `{'op':'ping'}`, CodeBadRequest, 0},
		{"raw control char", "{\"op\":\"set_status\",\"text\":\"a\x01\"}", CodeBadRequest, 0},
		{"invalid utf-8", "{\"op\":\"set_status\",\"id\":3,\"text\":\"\xff\"}", CodeBadRequest, 0},
		{"bad escape", `{"op":"set_status","text":"\x"}`, CodeBadRequest, 0},
		{"bad number", `{"op":"ping","id":01}`, CodeBadRequest, 0},
		{"too deep", `{"op":"ping","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, CodeBadRequest, 0},
		{"missing op", `{"id":7}`, CodeBadRequest, 7},
		{"op not a string", `{"op":1,"id":7}`, CodeBadRequest, 7},
		{"unknown op", `{"op":"subscribe_all","id":7}`, CodeUnknownOp, 7},
		{"server op", `{"id":7,"op":"pong"}`, CodeUnknownOp, 7},
		{"op case", `{"op":"PING","id":7}`, CodeUnknownOp, 7},
		{"unknown field", `{"op":"ping","id":7,"extra":1}`, CodeBadRequest, 7},
		{"field case", `{"OP":"ping","id":7}`, CodeBadRequest, 7},
		{"repeated field", `{"op":"ping","id":7,"op":"ping"}`, CodeBadRequest, 7},
		{"field of another op", `{"op":"ping","id":7,"group":"g1"}`, CodeBadRequest, 7},
		{"id negative", `{"op":"ping","id":-1}`, CodeBadRequest, 0},
		{"id fraction", `{"op":"ping","id":1.5}`, CodeBadRequest, 0},
		{"id exponent", `{"op":"ping","id":1e3}`, CodeBadRequest, 0},
		{"id string", `{"op":"ping","id":"7"}`, CodeBadRequest, 0},
		{"id overflow", `{"op":"ping","id":18446744073709551616}`, CodeBadRequest, 0},
		{"subscribe without group", `{"op":"subscribe","id":1}`, CodeBadRequest, 1},
		{"group empty", `{"op":"subscribe","id":1,"group":""}`, CodeBadRequest, 1},
		{"group with dot", `{"op":"subscribe","id":1,"group":"a.b"}`, CodeBadRequest, 1},
		{"group too long", `{"op":"subscribe","id":1,"group":"` + strings.Repeat("a", 65) + `"}`, CodeBadRequest, 1},
		{"group not a string", `{"op":"subscribe","id":1,"group":5}`, CodeBadRequest, 1},
		{"rev string", `{"op":"subscribe","id":1,"group":"g","rev":"5"}`, CodeBadRequest, 1},
		{"counts_only string", `{"op":"subscribe","id":1,"group":"g","counts_only":"yes"}`, CodeBadRequest, 1},
		{"epoch too long", `{"op":"subscribe","id":1,"group":"g","rev":1,"epoch":"` + strings.Repeat("e", 65) + `"}`, CodeBadRequest, 1},
		{"unsubscribe with rev", `{"op":"unsubscribe","id":2,"group":"g","rev":1}`, CodeBadRequest, 2},
		{"bad status", `{"op":"set_status","id":3,"status":"dnd"}`, CodeBadRequest, 3},
		{"text too long", `{"op":"set_status","id":3,"text":"` + strings.Repeat("x", MaxStatusText+1) + `"}`, CodeBadRequest, 3},
		{"expires negative", `{"op":"set_status","id":3,"expires_in":-5}`, CodeBadRequest, 3},
		{"expires too far", `{"op":"set_status","id":3,"expires_in":` + itoa(MaxExpiresIn+1) + `}`, CodeBadRequest, 3},
		{"query without users", `{"op":"query","id":4}`, CodeBadRequest, 4},
		{"query empty users", `{"op":"query","id":4,"users":[]}`, CodeBadRequest, 4},
		{"query users not strings", `{"op":"query","id":4,"users":[1,2]}`, CodeBadRequest, 4},
		{"query users not array", `{"op":"query","id":4,"users":"a"}`, CodeBadRequest, 4},
		{"query bad user", `{"op":"query","id":4,"users":["a b"]}`, CodeBadRequest, 4},
		{"query too many", `{"op":"query","id":4,"users":` + users(MaxQueryUsers+1) + `}`, CodeBadRequest, 4},
		{"watch bad group", `{"op":"watch_counts","id":5,"groups":["g1",""]}`, CodeBadRequest, 5},
		{"watch too many", `{"op":"watch_counts","id":5,"groups":` + users(MaxWatchGroups+1) + `}`, CodeBadRequest, 5},
		{"refresh without token", `{"op":"refresh","id":8}`, CodeBadRequest, 8},
		{"refresh token too long", `{"op":"refresh","id":8,"token":"` + strings.Repeat("t", MaxTokenLen+1) + `"}`, CodeBadRequest, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := DecodeClientFrame([]byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeClientFrame(%.80s) = %+v, want an error", tt.in, f)
			}
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if e.Code != tt.code {
				t.Errorf("code %q (%v), want %q", e.Code, err, tt.code)
			}
			if f.ID != tt.wantID {
				t.Errorf("frame id %d, want %d", f.ID, tt.wantID)
			}
		})
	}
}

func TestEncodeClientFrameValidates(t *testing.T) {
	tests := []struct {
		name string
		f    ClientFrame
		code ErrorCode
	}{
		{"no op", ClientFrame{ID: 1}, CodeBadRequest},
		{"unknown op", ClientFrame{Op: "nope"}, CodeUnknownOp},
		{"stray field", ClientFrame{Op: OpPing, Token: "t"}, CodeBadRequest},
		{"bad group", ClientFrame{Op: OpSubscribe, Group: "a/b"}, CodeBadRequest},
		{"text not utf-8", ClientFrame{Op: OpSetStatus, Text: "\xff"}, CodeBadRequest},
		{"negative expiry", ClientFrame{Op: OpSetStatus, ExpiresIn: -1}, CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := EncodeClientFrame(tt.f)
			if got := CodeOf(err); err == nil || got != tt.code {
				t.Errorf("EncodeClientFrame(%+v) = %v, want code %s", tt.f, err, tt.code)
			}
		})
	}
}

func TestDecodeServerFrameRejects(t *testing.T) {
	tests := []struct {
		in   string
		code ErrorCode
	}{
		{`not json`, CodeBadRequest},
		{`{"id":1}`, CodeBadRequest},
		{`{"op":"subscribe","id":1}`, CodeUnknownOp},
		{`{"op":"future_op"}`, CodeUnknownOp},
		{`{"op":"delta","rev":"x"}`, CodeBadRequest},
	}
	for _, tt := range tests {
		_, err := DecodeServerFrame([]byte(tt.in))
		if got := CodeOf(err); err == nil || got != tt.code {
			t.Errorf("DecodeServerFrame(%s) = %v, want code %s", tt.in, err, tt.code)
		}
	}
}

func TestDecodeServerFrameIgnoresNewFields(t *testing.T) {
	f, err := DecodeServerFrame([]byte(`{"op":"pong","id":7,"server_time":123}`))
	if err != nil || f.Op != OpPong || f.ID != 7 {
		t.Errorf("got %+v, %v", f, err)
	}
}

func TestErrorHelpers(t *testing.T) {
	err := error(Errorf(CodeForbidden, "group %s", "g1"))
	if got := err.Error(); got != "protocol: forbidden: group g1" {
		t.Errorf("Error() = %q", got)
	}
	if got := CodeOf(errors.Join(errors.New("x"), err)); got != CodeForbidden {
		t.Errorf("CodeOf wrapped = %s", got)
	}
	if got := CodeOf(errors.New("plain")); got != CodeInternal {
		t.Errorf("CodeOf plain = %s", got)
	}
	for _, c := range allErrorCodes {
		if !c.Valid() {
			t.Errorf("%s not Valid", c)
		}
	}
	if ErrorCode("nope").Valid() {
		t.Error("unknown code is Valid")
	}
}

func TestCloseCodes(t *testing.T) {
	for _, c := range allCloseCodes {
		if CloseText(c) == "" {
			t.Errorf("close code %d has no text", c)
		}
	}
	for _, c := range []int{CloseTokenExpired, CloseUnauthorized, ClosePolicy} {
		if !ClosePermanent(c) {
			t.Errorf("ClosePermanent(%d) = false", c)
		}
	}
	for _, c := range []int{CloseNormal, CloseGoingAway, CloseSlowConsumer, CloseIdleTimeout, CloseRateLimited, 1006} {
		if ClosePermanent(c) {
			t.Errorf("ClosePermanent(%d) = true", c)
		}
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, "A-z_09": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "a.b": false, "a b": false, "é": false, "a*": false, "a>": false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestTokenFromSubprotocols(t *testing.T) {
	tests := []struct {
		in   []string
		want string
		ok   bool
	}{
		{[]string{Subprotocol, BearerSubprotocol("abc.def.ghi")}, "abc.def.ghi", true},
		{[]string{Subprotocol + ", bearer.tok"}, "tok", true},
		{[]string{Subprotocol}, "", false},
		{[]string{"bearer."}, "", false},
		{nil, "", false},
	}
	for _, tt := range tests {
		got, ok := TokenFromSubprotocols(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("TokenFromSubprotocols(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
