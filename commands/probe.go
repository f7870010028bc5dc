package commands

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/portledger/portledger/ledger"
	"github.com/shirou/gopsutil/v3/process"
)

// ProcessInfo is what the ledger records about the process that holds a port.
type ProcessInfo struct {
	PID       int
	StartedAt int64 // Unix milliseconds: with the PID it names one process, even after PID reuse
	Cmdline   string
}

// maxCmdline bounds the command line kept in an event.
const maxCmdline = 512

// LookupProcess reads a live process's start time and command line. It
// returns an EINVALID error when no such process exists.
func LookupProcess(pid int) (ProcessInfo, error) {
	if pid <= 0 || pid > 1<<22 {
		return ProcessInfo{}, ledger.Errorf(ledger.EINVALID, "pid %d: no such process", pid)
	}
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return ProcessInfo{}, ledger.Errorf(ledger.EINVALID, "pid %d: no such process", pid)
	}
	started, err := p.CreateTime()
	if err != nil {
		return ProcessInfo{}, ledger.Errorf(ledger.EINVALID, "pid %d: no such process", pid)
	}
	cmd, _ := p.Cmdline() // a zombie or a kernel thread has none; the PID is what matters
	if len(cmd) > maxCmdline {
		cmd = cmd[:maxCmdline]
	}
	return ProcessInfo{PID: pid, StartedAt: started, Cmdline: cmd}, nil
}

// ProbePort reports whether this machine lets us bind port on TCP, on
// 127.0.0.1, 0.0.0.0 and (where IPv6 exists) [::]. It returns nil when the
// port is free and an error naming the address otherwise. The sockets are
// closed before it returns.
func ProbePort(port int) error {
	addrs := []struct{ network, host string }{
		{"tcp4", "127.0.0.1"},
		{"tcp4", "0.0.0.0"},
	}
	if hasIPv6() {
		addrs = append(addrs, struct{ network, host string }{"tcp6", "::"})
	}
	for _, a := range addrs {
		l, err := net.Listen(a.network, net.JoinHostPort(a.host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("port %d is in use on %s", port, a.host)
		}
		_ = l.Close()
	}
	return nil
}

var ipv6 = sync.OnceValue(func() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
})

func hasIPv6() bool { return ipv6() }

// errClosed is returned to commands submitted after Close.
var errClosed = errors.New("the ledger is shutting down")
