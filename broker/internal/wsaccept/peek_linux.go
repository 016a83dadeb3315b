package wsaccept

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// peek copies what has arrived on rc's socket into b without reading it:
// EAGAIN when nothing has, 0 bytes when the peer closed its side.
func peek(rc syscall.RawConn, b []byte) (n int, err error) {
	cerr := rc.Control(func(fd uintptr) {
		for {
			n, _, err = syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if err != syscall.EINTR {
				return
			}
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	return n, err
}

// waitMore waits until more than seen bytes have arrived on rc's socket,
// or the peer closed its side (ErrPeerClosed: a FIN behind unread bytes
// shows in no peek, only in poll's POLLRDHUP), or the socket failed or was
// closed.
func waitMore(rc syscall.RawConn, b []byte, seen int) error {
	var hup bool
	err := rc.Read(func(fd uintptr) bool {
		for {
			n, _, err := syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return false
			case err != nil || n == 0 || n > seen:
				return true
			}
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
			if _, err := unix.Poll(fds, 0); err == nil && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
				hup = true
				return true
			}
			return false
		}
	})
	if err == nil && hup {
		return ErrPeerClosed
	}
	return err
}

// sendNow writes b to rc's socket in one attempt, without waiting for room:
// EAGAIN when the socket's buffer is full.
func sendNow(rc syscall.RawConn, b []byte) (n int, err error) {
	cerr := rc.Write(func(fd uintptr) bool {
		for {
			n, err = syscall.Write(int(fd), b)
			if err != syscall.EINTR {
				return true
			}
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	return n, err
}
