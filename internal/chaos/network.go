package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoNamespaces is returned when this machine cannot make network
// namespaces (not root, not Linux, no iproute2): the suite cannot run.
var ErrNoNamespaces = errors.New("chaos: network namespaces unavailable")

// namePrefix starts the name of every namespace the suite makes; the
// creating process's pid follows, so leftovers of a run that crashed can be
// told from those of a run still going.
const namePrefix = "pchaos-"

// subnet holds every host: host i is at 10.77.0.i.
const subnet = "10.77.0"

// Network is a private test network: a hub namespace holding a bridge, and
// one namespace per host joined to it by a veth pair. Nothing is added to
// the namespace the suite runs in.
type Network struct {
	name  string
	hub   string
	hosts map[int]string // host number → namespace
}

// NewNetwork makes the namespaces of hosts (numbers 1 to 254) under a name
// unique to this process and tag. On error, whatever was made is removed.
func NewNetwork(ctx context.Context, tag string, hosts []int) (_ *Network, err error) {
	name := fmt.Sprintf("%s%d-%s", namePrefix, os.Getpid(), tag)
	n := &Network{name: name, hub: name + "-hub", hosts: map[int]string{}}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := ip(ctx, "netns", "add", n.hub); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"-n", n.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", n.hub, "link", "set", "br0", "up"},
		{"-n", n.hub, "link", "set", "lo", "up"},
	}
	for _, h := range hosts {
		if h < 1 || h > 254 {
			return nil, fmt.Errorf("chaos: host %d out of 1-254", h)
		}
		ns := fmt.Sprintf("%s-h%d", name, h)
		if err := ip(ctx, "netns", "add", ns); err != nil {
			return nil, err
		}
		n.hosts[h] = ns
		veth := fmt.Sprintf("v%d", h)
		steps = append(steps,
			[]string{"-n", n.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", n.hub, "link", "set", veth, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", n.IP(h) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// IP is the address of host h.
func (n *Network) IP(h int) string { return fmt.Sprintf("%s.%d", subnet, h) }

// NS is the namespace of host h.
func (n *Network) NS(h int) string { return n.hosts[h] }

// hostOf returns the host that owns address ip.
func (n *Network) hostOf(ip string) (int, bool) {
	rest, ok := strings.CutPrefix(ip, subnet+".")
	if !ok {
		return 0, false
	}
	h, err := strconv.Atoi(rest)
	if err != nil {
		return 0, false
	}
	_, ok = n.hosts[h]
	return h, ok
}

// Cut takes host h's link to the bridge down, in the hub, so that no packet
// passes either way while every socket stays open.
func (n *Network) Cut(ctx context.Context, h int) error {
	return ip(ctx, "-n", n.hub, "link", "set", fmt.Sprintf("v%d", h), "down")
}

// Heal brings host h's link back up.
func (n *Network) Heal(ctx context.Context, h int) error {
	return ip(ctx, "-n", n.hub, "link", "set", fmt.Sprintf("v%d", h), "up")
}

// Close kills whatever still runs in the namespaces and deletes them.
func (n *Network) Close() {
	for _, ns := range n.hosts {
		removeNamespace(ns)
	}
	removeNamespace(n.hub)
}

// removeNamespace kills the processes left in ns and deletes it.
func removeNamespace(ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = ip(ctx, "netns", "del", ns)
}

// RemoveStale deletes the namespaces of earlier runs whose process is gone,
// and kills what still ran in them. It returns their names.
func RemoveStale() []string {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err == nil && (pid == os.Getpid() || processAlive(pid)) {
			continue
		}
		removeNamespace(e.Name())
		removed = append(removed, e.Name())
	}
	return removed
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// CheckNamespaces makes and deletes a namespace, and tries to join it from
// this process: ErrNoNamespaces, with the reason, when that fails.
func CheckNamespaces(ctx context.Context) error {
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: no ip command (iproute2): %v", ErrNoNamespaces, err)
	}
	ns := fmt.Sprintf("%s%d-check", namePrefix, os.Getpid())
	if err := ip(ctx, "netns", "add", ns); err != nil {
		return fmt.Errorf("%w: %v", ErrNoNamespaces, err)
	}
	defer removeNamespace(ns)
	if err := runIn(ns, func() {}); err != nil {
		return fmt.Errorf("%w: %v", ErrNoNamespaces, err)
	}
	return nil
}

// ip runs the ip command.
func ip(ctx context.Context, args ...string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("chaos: ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
