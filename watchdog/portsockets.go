package watchdog

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/shirou/gopsutil/v3/net"
)

// Socket is one socket of this machine on a port: a listening TCP socket or
// a bound UDP socket, with its owner where the OS names it.
type Socket struct {
	Proto  string `json:"proto"`  // "tcp" or "udp"
	Family int    `json:"family"` // 4 or 6
	Addr   string `json:"addr"`   // the local address, e.g. "127.0.0.1", "::1", "::"
	Port   int    `json:"port"`
	PID    int    `json:"pid,omitempty"` // 0 when the owner could not be found (another user's process)
	UID    int    `json:"uid"`           // the socket's owner; -1 where the OS does not say
	Inode  uint64 `json:"-"`
}

// Endpoint renders the socket as "127.0.0.1:8003" or "[::1]:8003".
func (s Socket) Endpoint() string {
	a, err := netip.ParseAddr(s.Addr)
	if err != nil {
		return s.Addr
	}
	return netip.AddrPortFrom(a, uint16(s.Port)).String()
}

// PortSockets returns the TCP listeners and the UDP sockets of this machine
// on port, IPv4 and IPv6, each with its owning process where it can be
// found, ordered by protocol, family and address.
func PortSockets(ctx context.Context, port int) ([]Socket, error) {
	socks, err := portSockets(ctx, port)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(socks, func(a, b Socket) int {
		return cmp.Or(
			strings.Compare(a.Proto, b.Proto),
			cmp.Compare(a.Family, b.Family),
			strings.Compare(a.Addr, b.Addr),
			cmp.Compare(a.PID, b.PID),
		)
	})
	return socks, nil
}

// connSockets asks gopsutil for the sockets on port: the portable way, which
// walks every process's files and so names the owners at once.
func connSockets(ctx context.Context, port int) ([]Socket, error) {
	conns, err := net.ConnectionsWithContext(ctx, "inet")
	if err != nil {
		return nil, err
	}
	var out []Socket
	for _, c := range conns {
		if int(c.Laddr.Port) != port {
			continue
		}
		s := Socket{Port: port, Addr: c.Laddr.IP, PID: int(c.Pid), UID: -1, Family: 4}
		if c.Family == syscall.AF_INET6 {
			s.Family = 6
		}
		if len(c.Uids) > 0 {
			s.UID = int(c.Uids[0])
		}
		switch c.Type {
		case syscall.SOCK_STREAM:
			if c.Status != "LISTEN" {
				continue
			}
			s.Proto = "tcp"
		case syscall.SOCK_DGRAM:
			s.Proto = "udp"
		default:
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// connListeners asks gopsutil for the listening TCP sockets (IPv4 and
// IPv6) with their owners: the portable listing, where the Linux fast paths
// (sock_diag, /proc/net) do not exist.
func connListeners(ctx context.Context) (listing, error) {
	conns, err := net.ConnectionsWithContext(ctx, "tcp")
	if err != nil {
		return nil, err
	}
	out := make(listing)
	for _, c := range conns {
		if c.Status != "LISTEN" {
			continue
		}
		port := int(c.Laddr.Port)
		out[port] = append(out[port], listener{PID: int(c.Pid)})
	}
	return out, nil
}

// connUDPPorts returns the local ports of the machine's UDP sockets, through
// gopsutil.
func connUDPPorts(ctx context.Context) (map[int]bool, error) {
	conns, err := net.ConnectionsWithContext(ctx, "udp")
	if err != nil {
		return nil, err
	}
	out := make(map[int]bool, len(conns))
	for _, c := range conns {
		if c.Laddr.Port != 0 {
			out[int(c.Laddr.Port)] = true
		}
	}
	return out, nil
}
