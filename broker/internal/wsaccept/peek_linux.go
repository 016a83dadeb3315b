package wsaccept

import "syscall"

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
