package strictjson

import (
	"errors"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	type body struct {
		ID   string   `json:"id"`
		Tags []string `json:"tags"`
	}
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"plain", `{"id":"a","tags":["x"]}`, true},
		{"whitespace around", " \n{\"id\":\"a\"}\n ", true},
		{"name in another case", `{"ID":"a"}`, false},
		{"both cases", `{"id":"a","ID":"b"}`, false},
		{"duplicate member", `{"id":"a","id":"b"}`, false},
		{"invalid UTF-8", "{\"id\":\"a\xff\"}", false},
		{"unknown member", `{"id":"a","extra":1}`, false},
		{"two values", `{"id":"a"} {"id":"b"}`, false},
		{"wrong type", `{"id":1}`, false},
		{"truncated", `{"id":"a"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b body
			err := Decode(strings.NewReader(tt.in), &b)
			if (err == nil) != tt.ok {
				t.Fatalf("Decode(%q) = %v, want ok %v", tt.in, err, tt.ok)
			}
		})
	}
	var b body
	if err := Decode(strings.NewReader("  "), &b); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty body: %v", err)
	}
	if err := Decode(strings.NewReader(`{"id":"a"`), &b); err == nil || errors.Is(err, ErrEmpty) {
		t.Fatalf("truncated body: %v", err)
	}
}
