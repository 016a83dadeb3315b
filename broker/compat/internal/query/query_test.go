package query

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		raw  string
		want Values
	}{
		{"", Values{}},
		{"a=1", Values{"a": {Values: []string{"1"}}}},
		{"a=1&a=2", Values{"a": {Values: []string{"1", "2"}, Array: true}}},
		{"ids[]=x&ids[]=y", Values{"ids": {Values: []string{"x", "y"}, Array: true}}},
		{"ids%5B%5D=x", Values{"ids": {Values: []string{"x"}, Array: true}}},
		{"ids[0]=x&ids[1]=y", Values{"ids": {Values: []string{"x", "y"}, Array: true}}},
		{"q=a+b%20c", Values{"q": {Values: []string{"a b c"}}}},
		{"bad=%zz&&=v&k", Values{"bad": {Values: []string{"%zz"}}, "": {Values: []string{"v"}}, "k": {Values: []string{""}}}},
		{"[x]=1", Values{"[x]": {Values: []string{"1"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			if got := Parse(tt.raw); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q) = %#v, want %#v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		raw  string
		want []string
	}{
		{"ids=a,b", []string{"a", "b"}},
		{"ids=a&ids=b", []string{"a", "b"}},
		{"ids[]=a,b", []string{"a,b"}},
		{"ids= a, b", []string{" a", " b"}},
		{"ids=", nil},
		{"ids[]=", []string{""}},
		{"other=1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			if got := Parse(tt.raw).List("ids"); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("List = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestMaxParams(t *testing.T) {
	raw := ""
	for i := range MaxParams + 5 {
		if i > 0 {
			raw += "&"
		}
		raw += "k=v"
	}
	if n := len(Parse(raw)["k"].Values); n != MaxParams {
		t.Fatalf("read %d values, want %d", n, MaxParams)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"a=1&a[]=2", "%", "ids[]=x&ids=y,z", "==&&[]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v := Parse(raw)
		for name, p := range v {
			if len(p.Values) == 0 {
				t.Fatalf("param %q has no values", name)
			}
			_ = v.List(name)
		}
	})
}
