package commands

import (
	"context"
	"fmt"
	"github.com/portledger/portledger/internal/proc"
	"net"
	"os"
	"strconv"

	"github.com/portledger/portledger/ledger"
)

// ProcessInfo is what the ledger records about the process that holds a port.
type ProcessInfo struct {
	PID       int
	StartedAt int64 // Unix milliseconds: with the PID it names one process, even after PID reuse
	Cmdline   string
	// UID is the process's real user id; -1 when unknown.
	UID int
	// KernelThread is set for a kernel thread, which never serves a port.
	KernelThread bool
	// ThreadOf is, for a thread that is not its process's main thread
	// (Linux lets /proc and kill name any thread), the process it belongs
	// to; 0 otherwise or when unknown.
	ThreadOf int
}

// LookupProcess reads a live process's start time and command line. It
// returns an EINVALID error when no such process exists.
func LookupProcess(pid int) (ProcessInfo, error) {
	p, err := proc.Open(context.Background(), pid)
	if err != nil {
		return ProcessInfo{}, ledger.Errorf(ledger.EINVALID, "pid %d: no such process", pid)
	}
	started, err := p.CreateTime()
	if err != nil {
		return ProcessInfo{}, ledger.Errorf(ledger.EINVALID, "pid %d: no such process", pid)
	}
	cmd, _ := p.Cmdline() // a zombie or a kernel thread has none; the PID is what matters
	cmd = escapeObserved(cmd, ledger.MaxText)
	info := ProcessInfo{PID: pid, StartedAt: started, Cmdline: cmd, UID: -1}
	uid, kthread, tgid, err := processTraits(pid)
	if err == nil {
		info.UID = uid
	}
	info.KernelThread = kthread
	if tgid > 0 && tgid != pid {
		info.ThreadOf = tgid
	}
	return info, nil
}

// checkServicePID refuses a process that cannot be the service holding a
// port, so that it cannot pin the port forever (the watchdog would find it
// alive and never free the port): a kernel thread, this ledger process
// itself (the daemon, or the CLI in embedded mode), and a process of
// another user unless the caller is root. The caller's uid is the actor's
// (the socket peer's, or the CLI's own); a token holder over TCP counts as
// the daemon's owner, whose file the token is.
func checkServicePID(ctx context.Context, info ProcessInfo) error {
	if info.KernelThread {
		return ledger.Errorf(ledger.EINVALID, "pid %d is a kernel thread, not a service", info.PID)
	}
	if info.PID == os.Getpid() || info.ThreadOf == os.Getpid() {
		return ledger.Errorf(ledger.EINVALID, "pid %d is the ledger process itself, not a service", info.PID)
	}
	if info.ThreadOf != 0 {
		return ledger.Errorf(ledger.EINVALID, "pid %d is a thread of process %d, not a process: give the process's pid", info.PID, info.ThreadOf)
	}
	caller := os.Getuid()
	if a, ok := ledger.ActorFrom(ctx); ok && a.UID >= 0 && (a.Via == ledger.ViaSocket || a.Via == ledger.ViaLocal) {
		caller = a.UID
	}
	if caller != 0 && info.UID >= 0 && info.UID != caller {
		return ledger.Errorf(ledger.EFORBIDDEN, "pid %d belongs to uid %d, not to the caller (uid %d): only root may name another user's process", info.PID, info.UID, caller)
	}
	return nil
}

// ProbePort reports whether this machine lets us listen on port on TCP: it
// returns nil when the port is free and an error otherwise. It binds the
// wildcard address once: where IPv6 exists that socket is dual-stack, and a
// dual-stack wildcard bind fails when any socket holds the port on any
// address of either family (127.0.0.1, 0.0.0.0, ::1, ::); without IPv6 it is
// 0.0.0.0, which fails when any IPv4 address holds it. One bind instead of
// one per address keeps the probe cheap on the writer's path. The socket is
// closed before it returns.
func ProbePort(port int) error {
	if err := probePort(port); err != nil {
		return fmt.Errorf("port %d is in use on this machine", port)
	}
	return nil
}

// ProbeUDPPort reports whether this machine lets us bind port on UDP: nil
// when it is free. Like ProbePort it binds the wildcard address, dual-stack
// where IPv6 exists, and closes the socket before it returns.
func ProbeUDPPort(port int) error {
	c, err := net.ListenPacket("udp", ":"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("port %d is in use on UDP on this machine", port)
	}
	return c.Close()
}

// listenProbe is probePort through the net package: a listener on the
// wildcard address, closed at once.
func listenProbe(port int) error {
	// A plain TCP socket: a multipath TCP one, which Go tries first for
	// listeners, costs an extra failed system call where the kernel lacks
	// it and tells nothing more about the port.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	return l.Close()
}
