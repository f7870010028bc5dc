package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

func TestCompactThroughTheBinary(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	for range 30 {
		out, errOut, code := run(t, data, "allocate", "--service", "api")
		is.Equal(code, 0) // allocate
		_, errOut, code = run(t, data, "release", strings.TrimSpace(out))
		is.Equal(code, 0) // release
		is.Equal(errOut, "")
	}
	history, _, code := run(t, data, "history", "--json")
	is.Equal(code, 0) // history before

	out, errOut, code := run(t, data, "compact", "--json", "--keep")
	is.Equal(code, 0) // compact
	is.Equal(errOut, "")
	var res ledger.CompactResult
	is.NoErr(json.Unmarshal([]byte(out), &res)) // JSON for scripts
	is.True(res.BytesAfter > 0 && res.BytesAfter <= res.BytesBefore)
	is.True(strings.Contains(res.Kept, "before-compact")) // --keep left the original

	after, _, code := run(t, data, "history", "--json")
	is.Equal(code, 0)        // history after
	is.Equal(after, history) // not one answer changed
	_, _, code = run(t, data, "allocate", "--service", "api")
	is.Equal(code, 0) // the compacted ledger takes writes

	_, errOut, code = run(t, data, "compact", "extra")
	is.Equal(code, 2) // a stray argument is a usage error
	is.True(strings.Contains(errOut, "ledger: compact takes no arguments"))
}

func TestCompactRefusesWhileADaemonServes(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	startServe(t, data)
	_, _, code := run(t, data, "allocate", "--service", "api")
	is.Equal(code, 0) // allocate through the daemon
	before, _, code := run(t, data, "history", "--json")
	is.Equal(code, 0) // history through the daemon

	_, errOut, code := run(t, data, "compact")
	is.Equal(code, 1)                                        // refused
	is.True(strings.Contains(errOut, "stop 'ledger serve'")) // saying what to do
	after, _, _ := run(t, data, "history", "--json")
	is.Equal(after, before) // nothing changed
}
