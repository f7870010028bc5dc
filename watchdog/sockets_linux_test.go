package watchdog

import (
	"context"
	"testing"

	stdnet "net"

	"github.com/shirou/gopsutil/v3/net"

	"github.com/matryer/is"
)

func TestParseProcNetTCP(t *testing.T) {
	is := is.New(t)
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0000000000000000 100 0 0 10 0
   1: 00000000:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F40 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 333 1 0000000000000000 20 4 30 10 -1
`
	out := listing{}
	is.NoErr(parseProcNetTCP([]byte(table), out))                      // parse
	is.Equal(len(out), 2)                                              // two listening ports
	is.Equal(out[8000], []listener{{Inode: 111}})                      // 0x1F40, established line skipped
	is.Equal(out[8001], []listener{{Inode: 222}})                      // 0x1F41 on 0.0.0.0
	is.True(parseProcNetTCP([]byte("hdr\n 0: x\n"), listing{}) != nil) // a short line is an error
}

// BenchmarkListing compares the two ways to list listening sockets:
// /proc/net/tcp{,6} alone, and gopsutil's walk over every process's files.
func BenchmarkListing(b *testing.B) {
	ctx := context.Background()
	b.Run("sock_diag", func(b *testing.B) {
		for b.Loop() {
			if err := diagListeners(listing{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proc", func(b *testing.B) {
		for b.Loop() {
			if _, err := procListeners(ctx, listing{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gopsutil", func(b *testing.B) {
		for b.Loop() {
			if _, err := net.ConnectionsWithContext(ctx, "tcp"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDiagAgreesWithProc checks the netlink listing against /proc: both must
// see our listener, with the same inode.
func TestDiagAgreesWithProc(t *testing.T) {
	is := is.New(t)
	l, err := stdnet.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	defer l.Close()
	diag := listing{}
	is.NoErr(diagListeners(diag)) // sock_diag works here
	proc, err := procListeners(context.Background(), listing{})
	is.NoErr(err)                                            // /proc works here
	is.True(len(diag[l.Addr().(*stdnet.TCPAddr).Port]) == 1) // sock_diag sees our listener
	// Other listeners of the machine may come and go between the two
	// reads; ours cannot.
	is.Equal(diag[l.Addr().(*stdnet.TCPAddr).Port], proc[l.Addr().(*stdnet.TCPAddr).Port]) // same inode
}
