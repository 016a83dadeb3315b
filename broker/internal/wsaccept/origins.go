package wsaccept

import "net/url"

// OriginPatterns turns configured origins (URLs or host patterns; "*" for
// any) into coder/websocket host patterns, or reports that any origin is
// allowed.
func OriginPatterns(origins []string) (patterns []string, any bool) {
	for _, o := range origins {
		if o == "*" {
			return nil, true
		}
		if u, err := url.Parse(o); err == nil && u.Host != "" {
			o = u.Host
		}
		patterns = append(patterns, o)
	}
	return patterns, false
}
