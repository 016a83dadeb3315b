package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
)

// stdClientFrame mirrors ClientFrame with encoding/json tags, as a second
// opinion on what a frame means.
type stdClientFrame struct {
	Op         Op       `json:"op"`
	ID         uint64   `json:"id"`
	Group      string   `json:"group"`
	Rev        uint64   `json:"rev"`
	Epoch      string   `json:"epoch"`
	CountsOnly bool     `json:"counts_only"`
	Status     Status   `json:"status"`
	Text       string   `json:"text"`
	ExpiresIn  int64    `json:"expires_in"`
	Users      []string `json:"users"`
	Groups     []string `json:"groups"`
	Token      string   `json:"token"`
}

// FuzzDecodeClientFrame checks that the decoder never panics, reports only
// *Error, accepts only what encoding/json reads the same way, and that what
// it accepts survives EncodeClientFrame and decoding again.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, c := range clientCases {
		b, err := EncodeClientFrame(c.frame)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeClientFrame(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		var std stdClientFrame
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("accepted %q, encoding/json rejects it: %v", data, err)
		}
		if ClientFrame(std).Op != got.Op || !sameFrame(ClientFrame(std), got) {
			t.Fatalf("decoded %q as\n%+v\nencoding/json reads\n%+v", data, got, std)
		}
		enc, err := EncodeClientFrame(got)
		if err != nil {
			t.Fatalf("cannot encode accepted frame %+v: %v", got, err)
		}
		again, err := DecodeClientFrame(enc)
		if err != nil {
			t.Fatalf("cannot decode re-encoded %s: %v", enc, err)
		}
		if !sameFrame(again, got) {
			t.Fatalf("re-encoding changed the frame:\n%+v\n%+v", got, again)
		}
	})
}

// sameFrame compares frames treating nil and empty slices alike.
func sameFrame(a, b ClientFrame) bool {
	if len(a.Users) == 0 && len(b.Users) == 0 {
		a.Users, b.Users = nil, nil
	}
	if len(a.Groups) == 0 && len(b.Groups) == 0 {
		a.Groups, b.Groups = nil, nil
	}
	return reflect.DeepEqual(a, b)
}
