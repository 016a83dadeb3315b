package bitrix24

import (
	"encoding/json"
	"math"
	"testing"
)

func TestIntval(t *testing.T) {
	tests := []struct {
		in   any
		want int64
	}{
		{"69", 69}, {"69abc", 69}, {"  69", 69}, {"\n+69", 69}, {"-5", -5}, {"abc", 0}, {"", 0},
		{"0x1A", 0}, {"1e3", 1000}, {"1.9", 1}, {".5", 0}, {"99999999999999999999", math.MaxInt64},
		{json.Number("69"), 69}, {json.Number("69.9"), 69}, {69.9, 69}, {-0.5, 0},
		{true, 1}, {false, 0}, {nil, 0}, {[]any{"69"}, 1}, {[]any{}, 0},
		{map[string]any{"a": "b"}, 1}, {map[string]any{}, 0}, {math.Inf(1), 0},
	}
	for _, tt := range tests {
		if got := intval(tt.in); got != tt.want {
			t.Errorf("intval(%#v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		path string
		want target
		ok   bool
	}{
		{"/rest/sonet_group.user.get", target{method: "sonet_group.user.get"}, true},
		{"/rest/SONET_GROUP.USER.GET.json", target{method: "sonet_group.user.get"}, true},
		{"/rest/12/s3cr3t/sonet_group.user.get.json", target{method: "sonet_group.user.get", webhook: true, userSeq: 12, secret: "s3cr3t"}, true},
		{"/rest/", target{}, false},
		{"/rest/.json", target{}, false},
		{"/rest/x/s/m", target{}, false},
		{"/rest/0/s/m", target{}, false},
		{"/rest/1//m", target{}, false},
		{"/rest/a/b", target{}, false},
		{"/other/m", target{}, false},
	}
	for _, tt := range tests {
		got, ok := parsePath(tt.path)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parsePath(%q) = %+v %v, want %+v %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}
