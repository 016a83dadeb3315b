//go:build !linux

package netpoll

type impl struct{}

// New fails: this platform's sockets are read with a goroutine each.
func New() (*Poller, error) { return nil, ErrUnsupported }

// Close does nothing.
func (p *Poller) Close() error { return nil }

func (p *Poller) ctl(*Watch, op) error { return ErrUnsupported }
