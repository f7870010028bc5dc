package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// TestTCPFallbackReachesTheDaemon runs, on Linux, the way the CLI reaches
// the daemon where unix sockets name no peer (Windows): the address the
// daemon records in its data directory, over loopback TCP, with the token
// from the token file.
func TestTCPFallbackReachesTheDaemon(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	layout := ledger.Layout{Dir: data}
	addr := testbin.FreeAddr(t)
	serve := bins.Serve(t, data, e2eRange, addr)
	testbin.WaitFor(t, "the daemon records its address", func() bool {
		_, err := os.Stat(addrFile(layout))
		return err == nil
	})
	got, err := os.ReadFile(addrFile(layout))
	is.NoErr(err)
	is.Equal(string(got), addr+"\n") // the TCP address, as served

	ctx := context.Background()
	cl, err := tcpClient(ctx, layout, "")
	is.NoErr(err)      // found
	is.True(cl != nil) // a daemon answers there
	a, err := cl.Allocate(ctx, ledger.AllocateRequest{ServiceName: "over-tcp"})
	is.NoErr(err) // a write goes through with the token file's token
	is.True(a.Port > 0)

	code, sig := serve.Stop(t, syscall.SIGTERM)
	is.Equal(code, 0) // stopped cleanly
	is.Equal(sig, syscall.Signal(0))
	_, err = os.Stat(addrFile(layout))
	is.True(errors.Is(err, os.ErrNotExist)) // the address goes with the daemon

	// A file left by a killed daemon leads nowhere.
	is.NoErr(os.WriteFile(addrFile(layout), []byte(addr+"\n"), 0o600))
	cl, err = tcpClient(ctx, layout, "")
	is.NoErr(err)
	is.True(cl == nil) // nobody answers: no client
	// Nor does an address off this machine get the token.
	is.NoErr(os.WriteFile(addrFile(layout), []byte("192.0.2.1:7999\n"), 0o600))
	_, err = tcpClient(ctx, layout, "")
	is.True(err != nil) // refused before any connection
	// No file: no daemon.
	cl, err = tcpClient(ctx, ledger.Layout{Dir: filepath.Join(data, "none")}, "")
	is.NoErr(err)
	is.True(cl == nil)
}

func TestLoopbackOf(t *testing.T) {
	for _, tt := range []struct {
		name, addr, want string
		bad              bool
	}{
		{name: "loopback v4", addr: "127.0.0.1:7999", want: "127.0.0.1:7999"},
		{name: "loopback v6", addr: "[::1]:7999", want: "[::1]:7999"},
		{name: "localhost", addr: "localhost:7999", want: "localhost:7999"},
		{name: "wildcard v4", addr: "0.0.0.0:7999", want: "127.0.0.1:7999"},
		{name: "wildcard v6", addr: "[::]:7999", want: "[::1]:7999"},
		{name: "another host", addr: "192.0.2.1:7999", bad: true},
		{name: "a name", addr: "example.com:7999", bad: true},
		{name: "no port", addr: "127.0.0.1", bad: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			got, err := loopbackOf(tt.addr)
			if tt.bad {
				is.True(err != nil) // refused
				return
			}
			is.NoErr(err)
			is.Equal(got, tt.want) // the loopback address to dial
		})
	}
}
