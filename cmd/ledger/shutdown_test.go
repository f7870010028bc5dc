//go:build unix

package main

import (
	"net"
	"syscall"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
)

// TestCleanStopWithAnUnusedConnection: a client that opened a connection
// and sent nothing on it (a browser's preconnect, the spare connection an
// HTTP client keeps after cancelling the request it dialed for) does not
// turn a SIGTERM into a failed stop: net/http's Shutdown waits for such a
// connection until it is 5 s old, and the daemon's grace outlasts that.
func TestCleanStopWithAnUnusedConnection(t *testing.T) {
	is := is.New(t)
	addr := testbin.FreeAddr(t)
	d := bins.Serve(t, t.TempDir(), e2eRange, addr)
	conn, err := net.Dial("tcp", addr)
	is.NoErr(err) // connect, and send nothing
	defer conn.Close()
	code, sig := d.Stop(t, syscall.SIGTERM)
	is.Equal(sig, syscall.Signal(0)) // not killed
	is.Equal(code, 0)                // a clean stop
}
