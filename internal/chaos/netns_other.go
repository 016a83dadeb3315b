//go:build !linux

package chaos

import "fmt"

const netnsDir = "/var/run/netns"

func runIn(ns string, fn func()) error {
	return fmt.Errorf("%w: network namespaces need Linux", ErrNoNamespaces)
}
