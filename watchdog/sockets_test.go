package watchdog

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestListingSeesListenersAndTheirOwner(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l4, err := net.Listen("tcp4", "127.0.0.1:0")
	is.NoErr(err) // listen on IPv4
	port4 := l4.Addr().(*net.TCPAddr).Port
	var port6 int
	if l6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		defer l6.Close()
		port6 = l6.Addr().(*net.TCPAddr).Port
	}
	// An outgoing connection is not a listener of its local port.
	c, err := net.Dial("tcp", l4.Addr().String())
	is.NoErr(err) // connect
	defer c.Close()
	outPort := c.LocalAddr().(*net.TCPAddr).Port

	tab := newSocketTable()
	got, err := tab.list(ctx)
	is.NoErr(err)                  // list
	is.Equal(len(got[port4]), 1)   // the IPv4 listener
	is.Equal(len(got[outPort]), 0) // not the client side of a connection
	if port6 != 0 {
		is.Equal(len(got[port6]), 1) // the IPv6 listener
	}
	socks := tab.resolve(ctx, got[port4])
	is.Equal(socks[0].PID, os.Getpid()) // owned by this process

	is.NoErr(l4.Close())
	got, err = tab.list(ctx)
	is.NoErr(err)
	is.Equal(len(got[port4]), 0) // gone once closed
}

func TestDialListening(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	is.NoErr(err)
	port := l.Addr().(*net.TCPAddr).Port
	is.True(dialListening(ctx, port, time.Second)) // a listener accepts
	is.NoErr(l.Close())
	is.True(!dialListening(ctx, port, time.Second)) // a closed port refuses
}
