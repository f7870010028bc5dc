package ledger

import (
	"net"
	"strconv"
	"strings"
)

// MaxPort is the highest TCP port number; ports run from 1 to MaxPort.
const MaxPort = 65535

// MaxText is the one bound, in bytes, of the free texts an event carries:
// a purpose, a reason, a health URL or endpoint, a command line. The
// commands refuse longer ones from callers and shorten longer ones they
// observe themselves (a process's command line); the watchdog shortens its
// own before it submits them.
const MaxText = 512

// CheckPort returns EINVALID with the one message every layer uses, unless
// port is a TCP port number (1-65535).
func CheckPort(port int) error {
	if port < 1 || port > MaxPort {
		return Errorf(EINVALID, "port %d: want 1-65535", port)
	}
	return nil
}

// ParsePort reads a TCP port number written in decimal. It returns EINVALID
// for text that is not a number, and CheckPort's error for a number that is
// not a port.
func ParsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, Errorf(EINVALID, "port %q: want a number 1-65535", s)
	}
	if err := CheckPort(n); err != nil {
		return 0, err
	}
	return n, nil
}

// IsLoopbackHost reports whether host is "localhost" (in any case) or a
// loopback IP address. It is the one test of "this machine" for health URLs,
// listen addresses and the watchdog's probes.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
