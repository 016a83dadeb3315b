//go:build !linux

package wsaccept

import (
	"errors"
	"syscall"
)

// peek is not needed where the server has no poller (see the netpoll
// package): connections are read with a goroutine each.
func peek(syscall.RawConn, []byte) (int, error) { return 0, errors.ErrUnsupported }

func waitMore(syscall.RawConn, []byte, int) error { return errors.ErrUnsupported }

// sendNow is not needed where connections are pinged by the library.
func sendNow(syscall.RawConn, []byte) (int, error) { return 0, errors.ErrUnsupported }
