//go:build linux

package watchdog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// The sock_diag netlink interface asks the kernel for sockets filtered by
// state. Only the listening table is walked for a LISTEN-only query, so the
// cost follows the number of listeners, not the thousands of TIME_WAIT
// sockets a busy machine carries (which /proc/net/tcp prints line by line).
const (
	netlinkSockDiag  = 4  // NETLINK_SOCK_DIAG
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	tcpStateListen   = 10 // TCP_LISTEN
	diagReqLen       = 56 // sizeof(struct inet_diag_req_v2)
	diagMsgLen       = 72 // sizeof(struct inet_diag_msg)
	allStates        = 0xffffffff
)

// diagSocket is one socket as sock_diag describes it.
type diagSocket struct {
	family uint8 // AF_INET or AF_INET6
	state  uint8
	port   int
	addr   netip.Addr // the local address
	uid    uint32
	inode  uint64
}

// diagListeners lists the listening TCP sockets of both address families
// through sock_diag and adds them to out.
func diagListeners(out listing) error {
	return diagDump(syscall.IPPROTO_TCP, 1<<tcpStateListen, func(s diagSocket) {
		if s.state == tcpStateListen {
			out[s.port] = append(out[s.port], listener{Inode: s.inode})
		}
	})
}

// diagUDPPorts adds the local port of every UDP socket of both address
// families to out: a UDP service serves once its socket is bound.
func diagUDPPorts(out map[int]bool) error {
	return diagDump(syscall.IPPROTO_UDP, allStates, func(s diagSocket) {
		if s.port != 0 {
			out[s.port] = true
		}
	})
}

// diagDump sends one dump request per address family for the sockets of
// protocol in the given states (a bit mask of 1<<state) and calls fn for
// each socket the kernel reports.
func diagDump(protocol uint8, states uint32, fn func(diagSocket)) error {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, netlinkSockDiag)
	if err != nil {
		return fmt.Errorf("sock_diag: %w", err)
	}
	defer syscall.Close(fd)
	// The kernel answers at once; the timeout only guards against a
	// kernel that never answers.
	tv := syscall.Timeval{Sec: 1}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("sock_diag: %w", err)
	}
	buf := make([]byte, 64<<10)
	for seq, family := range []uint8{syscall.AF_INET, syscall.AF_INET6} {
		if err := diagQuery(fd, uint32(seq+1), family, protocol, states, buf, fn); err != nil {
			return err
		}
	}
	return nil
}

// diagQuery sends one dump request for family and protocol and reads the
// answer up to NLMSG_DONE.
func diagQuery(fd int, seq uint32, family, protocol uint8, states uint32, buf []byte, fn func(diagSocket)) error {
	req := make([]byte, syscall.NLMSG_HDRLEN+diagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], sockDiagByFamily)
	ne.PutUint16(req[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	body := req[syscall.NLMSG_HDRLEN:]
	body[0] = family
	body[1] = protocol
	ne.PutUint32(body[4:], states)
	if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag: send: %w", err)
	}
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("sock_diag: receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("sock_diag: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				return nil
			case syscall.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(ne.Uint32(m.Data)); errno != 0 {
						return fmt.Errorf("sock_diag: %w", syscall.Errno(-errno))
					}
				}
				return errors.New("sock_diag: error reply")
			case sockDiagByFamily:
				if len(m.Data) < diagMsgLen {
					return errors.New("sock_diag: short message")
				}
				d := m.Data
				s := diagSocket{
					family: d[0],
					state:  d[1],
					port:   int(binary.BigEndian.Uint16(d[4:])),
					uid:    ne.Uint32(d[64:]),
					inode:  uint64(ne.Uint32(d[68:])),
				}
				if s.family == syscall.AF_INET {
					s.addr = netip.AddrFrom4([4]byte(d[8:12]))
				} else {
					s.addr = netip.AddrFrom16([16]byte(d[8:24]))
				}
				fn(s)
			}
		}
	}
}
