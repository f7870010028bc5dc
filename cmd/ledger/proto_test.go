package main

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
)

// protoRange is the managed range of the --proto test: its lowest port has
// a UDP socket bound.
const protoRange = "30850-30859"

// TestAllocateProtoFromTheCommandLine binds UDP on the range's lowest port
// and allocates with --proto: udp and both skip it, tcp takes it; through a
// daemon and from the ledger file.
func TestAllocateProtoFromTheCommandLine(t *testing.T) {
	const lo = 30850
	u, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(lo))
	if err != nil {
		t.Fatalf("bind UDP on %d: %v", lo, err)
	}
	defer u.Close()
	for _, daemon := range []bool{false, true} {
		name := "the ledger file"
		if daemon {
			name = "through the daemon"
		}
		t.Run(name, func(t *testing.T) {
			data := t.TempDir()
			env := testbin.Env(data, protoRange)
			if daemon {
				startServeEnv(t, data, env, "--range", protoRange)
			} else if _, errOut, code := runEnv(t, env, "range", "set", protoRange); code != 0 {
				t.Fatalf("range set: %s", errOut)
			}
			for _, c := range []struct {
				proto string
				want  int
			}{
				{"udp", lo + 1}, // the UDP socket's port is skipped
				{"both", lo + 2},
				{"tcp", lo}, // TCP does not care about a UDP socket
			} {
				is := is.New(t)
				out, errOut, code := runEnv(t, env, "allocate", "--service", "dns_"+c.proto, "--proto", c.proto)
				is.Equal(code, 0) // allocated
				is.Equal(errOut, "")
				is.Equal(strings.TrimSpace(out), strconv.Itoa(c.want)) // the first port free for the protocol
			}
		})
	}
}
