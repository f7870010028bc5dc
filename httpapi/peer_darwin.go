package httpapi

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// PeerCred returns the credentials of the process at the other end of c, as
// the kernel recorded them when the connection was made: macOS's
// LOCAL_PEERCRED (the uid and groups, what getpeereid(3) reads) and
// LOCAL_PEERPID (the pid).
func PeerCred(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Xucred
	var pid int
	var credErr, pidErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		pid, pidErr = unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID)
	}); err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", credErr)
	}
	p := Peer{UID: int(cred.Uid), GID: -1}
	if cred.Ngroups > 0 {
		p.GID = int(cred.Groups[0]) // the effective group comes first
	}
	if pidErr == nil {
		p.PID = pid
	}
	return p, nil
}
