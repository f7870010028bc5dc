//go:build !linux && !darwin

package httpapi

import (
	"errors"
	"net"
)

// PeerCred returns the credentials of the process at the other end of c.
// Linux (SO_PEERCRED) and macOS (LOCAL_PEERCRED) have them; elsewhere
// (Windows) it always fails, so that the socket serves reads only, the CLI
// refuses to trust what answers on it, and writes go over loopback TCP with
// the token.
func PeerCred(c *net.UnixConn) (Peer, error) {
	return Peer{}, errors.New("peer credentials: this system has no SO_PEERCRED or LOCAL_PEERCRED")
}
