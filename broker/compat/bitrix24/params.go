package bitrix24

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/presenced/presenced/broker/compat/internal/query"
)

// maxBodyBytes bounds a request body.
const maxBodyBytes = 1 << 20

// params merges a request's parameters the way Bitrix24's REST server sees
// them: the query, then the body (form, multipart or JSON), the body
// winning. Values are strings, []any for arrays, or JSON values. An
// unreadable body adds nothing.
func params(r *http.Request) map[string]any {
	out := map[string]any{}
	addValues(out, query.Parse(r.URL.RawQuery))
	if r.Body == nil {
		return out
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil || len(raw) == 0 {
		return out
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var body map[string]any
		if dec.Decode(&body) == nil {
			for k, v := range body {
				out[k] = v
			}
		}
	case "application/x-www-form-urlencoded":
		addValues(out, query.Parse(string(raw)))
	case "multipart/form-data":
		r.Body = io.NopCloser(bytes.NewReader(raw))
		if r.ParseMultipartForm(maxBodyBytes) == nil {
			addValues(out, query.FromMap(r.MultipartForm.Value))
			_ = r.MultipartForm.RemoveAll()
		}
	}
	return out
}

func addValues(dst map[string]any, v query.Values) {
	for k, p := range v {
		if !p.Array {
			dst[k] = p.First()
			continue
		}
		arr := make([]any, len(p.Values))
		for i, s := range p.Values {
			arr[i] = s
		}
		dst[k] = arr
	}
}

// stringParam returns a parameter that is a string, as Bitrix24 reads auth
// and access_token.
func stringParam(p map[string]any, name string) string {
	s, _ := p[name].(string)
	return s
}

var numericPrefix = regexp.MustCompile(`^[ \t\n\r\v\f]*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)`)
var integerOnly = regexp.MustCompile(`^[+-]?\d+$`)

// intval converts a parameter as PHP's intval does: "69", "69abc" and 69.9
// are 69; a string without a leading number is 0; true is 1; an array is 1
// unless empty.
func intval(v any) int64 {
	switch v := v.(type) {
	case nil:
		return 0
	case bool:
		if v {
			return 1
		}
		return 0
	case string:
		return intvalString(v)
	case json.Number:
		return intvalString(v.String())
	case float64:
		return floatToInt(v)
	case []any:
		return int64(min(len(v), 1))
	case map[string]any:
		return int64(min(len(v), 1))
	}
	return 0
}

func intvalString(s string) int64 {
	m := numericPrefix.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	num := m[1]
	if integerOnly.MatchString(num) {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil { // out of range: PHP saturates
			if strings.HasPrefix(num, "-") {
				return math.MinInt64
			}
			return math.MaxInt64
		}
		return n
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil && !math.IsInf(f, 0) {
		return 0
	}
	return floatToInt(f)
}

// floatToInt truncates toward zero; PHP 8 gives 0 for non-finite values
// and we saturate the rest.
func floatToInt(f float64) int64 {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}
