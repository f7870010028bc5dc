package faulttest

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// seedLedger makes a ledger in data with a few events through the CLI.
func seedLedger(t *testing.T, data string) {
	t.Helper()
	for _, svc := range []string{"api", "worker", "web"} {
		if r := run(t, data, "allocate", "--service", svc); r.code != 0 {
			t.Fatalf("allocate %s: %s", svc, r.err)
		}
	}
	if r := run(t, data, "release", "--reason", "done", "28501"); r.code != 0 {
		t.Fatalf("release: %s", r.err)
	}
}

// TestCorruptLedgerRefused damages ledger.db in the ways a crash, a bad disk
// or a stray write leave it. `ledger serve` and the CLI commands refuse it
// with a clear error (exit 1, `ledger: ...`), never panic, and never write
// to it: its bytes stay as they were.
func TestCorruptLedgerRefused(t *testing.T) {
	t.Parallel() // its own data directories; it mounts nothing
	const page = 4096
	tests := []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }},
		{"truncated inside the meta pages", func(b []byte) []byte { return b[:1000] }},
		{"meta pages overwritten", func(b []byte) []byte {
			copy(b, bytes.Repeat([]byte{0xAB}, 2*page))
			return b
		}},
		{"not a bbolt file", func(b []byte) []byte { return bytes.Repeat([]byte("port_registry "), 3000) }},
		{"freelist page overwritten", func(b []byte) []byte {
			copy(b[freelistPage(b)*page:], bytes.Repeat([]byte{0x5A}, page))
			return b
		}},
		{"tree pages overwritten, freelist intact", func(b []byte) []byte {
			fl := freelistPage(b)
			for i := 2 * page; i < len(b); i++ {
				if i/page != fl {
					b[i] ^= 0x5A
				}
			}
			return b
		}},
		{"data pages overwritten", func(b []byte) []byte {
			for i := 2 * page; i < len(b); i++ {
				b[i] ^= 0x5A
			}
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			seedLedger(t, data)
			db := ledger.Layout{Dir: data}.DB()
			b, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(db, tt.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			sum := fileSum(t, db)
			for _, args := range [][]string{
				{"serve", "--addr", ""},
				{"status"},
				{"allocate", "--service", "after"},
				{"history", "--port", "28500"},
				{"replay"},
			} {
				r := run(t, data, args...)
				t.Logf("%s: exit %d: %s", args[0], r.code, strings.TrimSpace(firstLine(r.err)))
				is := is.New(t)
				is.Equal(r.code, 1)                             // refused
				is.True(strings.HasPrefix(r.err, "ledger: "))   // with a message
				is.True(!strings.Contains(r.err, "goroutine ")) // not a panic
				is.True(strings.Contains(r.err, "corrupt"))     // that says what is wrong
				is.Equal(fileSum(t, db), sum)                   // and the file is untouched
			}
		})
	}
}

// freelistPage returns the freelist page of a bbolt file: the current meta
// (the higher transaction ID, at byte 48 of the meta after the 16-byte page
// header) names it at byte 32.
func freelistPage(b []byte) int {
	const page = 4096
	m0, m1 := b[16:], b[page+16:]
	m := m0
	if binary.NativeEndian.Uint64(m1[48:]) > binary.NativeEndian.Uint64(m0[48:]) {
		m = m1
	}
	return int(binary.NativeEndian.Uint64(m[32:]))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
