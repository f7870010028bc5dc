package httpapi

import (
	"context"
	"net"
)

// Peer is the kernel's word on the process at the other end of a unix
// socket connection (SO_PEERCRED): it cannot be forged by the caller.
type Peer struct {
	UID int
	GID int
	PID int
}

// connInfo is what ConnContext learns about a connection.
type connInfo struct {
	unix    bool  // the daemon's unix socket, not TCP
	peer    Peer  // set when unix and peerErr is nil
	peerErr error // the credentials could not be read
}

type connKey struct{}

// ConnContext is the http.Server ConnContext of the daemon's servers
// (NewHTTPServer sets it): for a unix socket connection it reads the peer's
// uid, gid and pid once, when the connection is accepted, and keeps them in
// the context of every request on it. The authorisation reads them there. A
// request whose context lacks them is treated as one over TCP.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return context.WithValue(ctx, connKey{}, connInfo{})
	}
	p, err := PeerCred(uc)
	return context.WithValue(ctx, connKey{}, connInfo{unix: true, peer: p, peerErr: err})
}

// connOf returns what ConnContext noted about the request's connection.
func connOf(ctx context.Context) connInfo {
	ci, _ := ctx.Value(connKey{}).(connInfo)
	return ci
}
