//go:build linux

package watchdog

import (
	"encoding/binary"
	"errors"
	"fmt"
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
)

// diagListeners lists the listening TCP sockets of both address families
// through sock_diag and adds them to out.
func diagListeners(out listing) error {
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
		if err := diagQuery(fd, uint32(seq+1), family, buf, out); err != nil {
			return err
		}
	}
	return nil
}

// diagQuery sends one LISTEN-only dump request for family and reads the
// answer up to NLMSG_DONE.
func diagQuery(fd int, seq uint32, family uint8, buf []byte, out listing) error {
	req := make([]byte, syscall.NLMSG_HDRLEN+diagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], sockDiagByFamily)
	ne.PutUint16(req[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	body := req[syscall.NLMSG_HDRLEN:]
	body[0] = family
	body[1] = syscall.IPPROTO_TCP
	ne.PutUint32(body[4:], 1<<tcpStateListen)
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
				if m.Data[1] != tcpStateListen {
					continue
				}
				port := int(binary.BigEndian.Uint16(m.Data[4:]))
				inode := uint64(ne.Uint32(m.Data[68:]))
				out[port] = append(out[port], listener{Inode: inode})
			}
		}
	}
}
