//go:build !linux

package httpapi

import (
	"errors"
	"net"
)

// PeerCred returns the credentials of the process at the other end of c. Only
// Linux has SO_PEERCRED; elsewhere it always fails, so that the socket
// serves reads only and the CLI refuses to trust what answers on it.
func PeerCred(c *net.UnixConn) (Peer, error) {
	return Peer{}, errors.New("peer credentials: SO_PEERCRED is Linux only")
}
