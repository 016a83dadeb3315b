package rocketchat

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/presenced/presenced/broker/compat/internal/query"
)

// kind is the JSON Schema type of a query parameter.
type kind int

const (
	kindString        kind = iota // a single string
	kindNumber                    // a single string Ajv coerces to a number
	kindStringOrArray             // a string or an array of strings
)

type field struct {
	name string
	kind kind
}

// schema is the query schema of a typed route, with additionalProperties
// false. It reports Ajv's first error, in Ajv's keyword order: required,
// additionalProperties, then each property.
type schema struct {
	required []string
	fields   []field
}

func (s schema) validate(q query.Values) *apiError {
	for _, name := range s.required {
		if !q.Has(name) {
			return invalidParams("must have required property '" + name + "'")
		}
	}
	for name := range q {
		if !slices.ContainsFunc(s.fields, func(f field) bool { return f.name == name }) {
			return invalidParams("must NOT have additional properties")
		}
	}
	for _, f := range s.fields {
		p, ok := q[f.name]
		if !ok {
			continue
		}
		switch f.kind {
		case kindString:
			if p.Array {
				return invalidParams("must be string")
			}
		case kindNumber:
			if _, ok := number(p); !ok {
				return invalidParams("must be number")
			}
		}
	}
	return nil
}

// number coerces a parameter the way Ajv's coerceTypes does: one non-empty
// string that reads as a finite number.
func number(p query.Param) (float64, bool) {
	if p.Array || p.First() == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(p.First()), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// Pagination defaults of upstream's getPaginationItems.
const (
	defaultCount = 50
	maxCount     = 100
)

// pagination returns offset and count from a validated query; count 0
// means no limit.
func pagination(q query.Values) (offset, count int) {
	if f, ok := number(q["offset"]); ok && f > 0 {
		offset = int(min(f, math.MaxInt32))
	}
	count = defaultCount
	if f, ok := number(q["count"]); ok {
		count = int(min(math.Abs(f), maxCount))
	}
	return offset, count
}

// page slices items by offset and count (0 = all).
func page[T any](items []T, offset, count int) []T {
	if offset >= len(items) {
		return items[:0]
	}
	items = items[offset:]
	if count > 0 && count < len(items) {
		items = items[:count]
	}
	return items
}
