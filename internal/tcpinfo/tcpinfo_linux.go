package tcpinfo

import (
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Of returns c's TCP_INFO; c must be a TCP connection with a descriptor.
func Of(t testing.TB, c net.Conn) *unix.TCPInfo {
	t.Helper()
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatalf("connection %T has no file descriptor", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var serr error
	if err := raw.Control(func(fd uintptr) { info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return info
}
