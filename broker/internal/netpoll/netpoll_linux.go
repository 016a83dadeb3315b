package netpoll

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// impl is the epoll instance. Its descriptor is itself watched by Go's
// runtime poller (it turns readable when a socket in it is ready), so the
// poller's goroutine waits as any network read does: no thread blocked in
// epoll_wait, holding the only processor of a GOMAXPROCS=1 server until
// the runtime takes it back.
type impl struct {
	epfd      int
	file      *os.File // epfd, as the runtime poller sees it
	closeOnce sync.Once
	done      chan struct{}
}

// New starts a poller and its goroutine.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, os.NewFile hands it to the runtime poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	file := os.NewFile(uintptr(epfd), "epoll")
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	p := &Poller{watches: map[uint64]*Watch{}, impl: impl{epfd: epfd, file: file, done: make(chan struct{})}}
	go p.loop(rc)
	return p, nil
}

// Close stops the poller's goroutine and waits for it; no callback runs
// after it returns. Watches left are dropped (their sockets stay open).
func (p *Poller) Close() error {
	p.mu.Lock()
	p.closed = true
	p.watches = map[uint64]*Watch{}
	p.mu.Unlock()
	var err error
	p.closeOnce.Do(func() { err = p.file.Close() }) // ends the loop's wait
	<-p.done
	return err
}

func (p *Poller) loop(rc syscall.RawConn) {
	defer close(p.done)
	defer p.failed()
	events := make([]unix.EpollEvent, 128)
	// Read calls back once the epoll descriptor is readable and again
	// after each wait, until Close closes it.
	_ = rc.Read(func(fd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(fd), events, 0)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return true // the epoll instance is unusable; Close still works
			}
			for _, ev := range events[:n] {
				p.fire(idOf(&ev))
			}
			if n < len(events) {
				return false // drained: wait for the next readiness
			}
		}
	})
}

// ctl registers, rearms or removes w's socket. It runs under the socket's
// own reference (RawConn.Control), so the descriptor cannot be closed, and
// its number given to another socket, in between.
func (p *Poller) ctl(w *Watch, o op) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	var cerr error
	err := w.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
		// The id goes in the event's 64 bits of user data.
		setID(&ev, w.id)
		switch o {
		case opAdd:
			cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		case opArm:
			cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		case opDel:
			cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		}
	})
	if err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("netpoll: %w", os.NewSyscallError("epoll_ctl", cerr))
	}
	return nil
}

// The event's 64 bits of user data carry the watch's id.
func setID(ev *unix.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func idOf(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
