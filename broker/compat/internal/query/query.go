// Package query parses URL-encoded parameters the way the vendors' servers do:
// like Node's qs and PHP, "k=a&k=b", "k[]=a&k[]=b" and "k[0]=a" all make k an
// array, and a malformed escape is kept as it is instead of failing the
// request.
package query

import (
	"net/url"
	"strings"
)

// MaxParams bounds how many pairs Parse reads; qs stops at 1000 as well.
const MaxParams = 1000

// Param is one parameter: its values in the order they came, and whether it
// was sent as an array (bracket syntax or a repeated key).
type Param struct {
	Values []string
	Array  bool
}

// First returns the first value, or "" when there is none.
func (p Param) First() string {
	if len(p.Values) == 0 {
		return ""
	}
	return p.Values[0]
}

// Values maps a parameter's base name (without brackets) to its Param.
type Values map[string]Param

// Parse reads a raw query string or form body. '+' means a space.
func Parse(raw string) Values {
	v := Values{}
	for n := 0; raw != "" && n < MaxParams; n++ {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		k, val, _ := strings.Cut(pair, "=")
		v.Add(unescape(k), unescape(val))
	}
	return v
}

// FromMap converts already split parameters (a multipart form, say) whose
// keys may still carry brackets.
func FromMap(m map[string][]string) Values {
	v := Values{}
	for k, vals := range m {
		for _, val := range vals {
			v.Add(k, val)
		}
	}
	return v
}

// Add appends value under key. A key "k[...]" adds to k and marks it an
// array; a key seen twice becomes an array too.
func (v Values) Add(key, value string) {
	name, array := key, false
	if i := strings.IndexByte(key, '['); i > 0 && strings.HasSuffix(key, "]") {
		name, array = key[:i], true
	}
	p, seen := v[name]
	p.Values = append(p.Values, value)
	p.Array = p.Array || array || seen
	v[name] = p
}

// Has reports whether name was sent at all.
func (v Values) Has(name string) bool {
	_, ok := v[name]
	return ok
}

// Get returns the first value of name, or "".
func (v Values) Get(name string) string { return v[name].First() }

// List returns name's values as qs would hand them to a handler that accepts
// "a,b" as well as an array: an array as it is, a single string split on
// commas. Items are not trimmed.
func (v Values) List(name string) []string {
	p, ok := v[name]
	if !ok {
		return nil
	}
	if p.Array {
		return p.Values
	}
	if p.First() == "" {
		return nil
	}
	return strings.Split(p.First(), ",")
}

// Keys returns the parameter names in no particular order.
func (v Values) Keys() []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	return keys
}

func unescape(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
