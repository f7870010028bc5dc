package faulttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/portledger/portledger/internal/ledgertest"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// allocation is what the tests read of an allocation answer.
type allocation struct {
	Port        int    `json:"port"`
	ServiceName string `json:"service_name"`
	EventID     string `json:"event_id"`
}

// allocateHTTP asks the daemon for a port and returns the status and the body.
func allocateHTTP(t testing.TB, d *daemon, service string) (int, []byte) {
	t.Helper()
	return call(t, "POST", d.url("/api/ports/allocations"),
		fmt.Sprintf(`{"service_name":%q,"started_by":"faulttest","purpose":"disk faults"}`, service), d.token)
}

// allocations lists the daemon's allocations by port.
func allocations(t testing.TB, d *daemon) map[int]allocation {
	t.Helper()
	status, b := call(t, "GET", d.url("/api/ports/allocations"), "", "")
	if status != http.StatusOK {
		t.Fatalf("list allocations: %d %s", status, b)
	}
	var body struct{ Allocations []allocation }
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	m := map[int]allocation{}
	for _, a := range body.Allocations {
		m[a.Port] = a
	}
	return m
}

// fill writes a file into dir until the file system is full and returns its
// path. The write fails with ENOSPC, the state a full disk leaves.
func fill(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for range 1 << 14 { // bounded: 1 GiB at most
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: want ENOSPC, got %v", dir, err)
	}
	return path
}

// TestFullDiskDaemon runs the daemon on a small tmpfs (a real file system
// that really fills up) and fills it. Allocations keep succeeding while
// bbolt can reuse pages it already wrote, then fail with a JSON 500 once a
// commit needs new space. Reads keep working, every acknowledged allocation
// stays, and the first allocation after the space returns succeeds without
// a restart; the log then passes bbolt's check.
func TestFullDiskDaemon(t *testing.T) {
	is := is.New(t)
	data := mountTmpfs(t, "4m")
	d := startDaemon(t, data)
	acked := map[int]string{} // port -> service of every acknowledged allocation
	for i := range 5 {
		status, b := allocateHTTP(t, d, fmt.Sprintf("before%d", i))
		is.Equal(status, http.StatusCreated) // allocate with space
		var a allocation
		is.NoErr(json.Unmarshal(b, &a))
		acked[a.Port] = a.ServiceName
	}
	filler := fill(t, data)

	// Allocate until a commit needs space it cannot get.
	var failed []byte
	for i := range 400 {
		status, b := allocateHTTP(t, d, fmt.Sprintf("full%d", i))
		if status == http.StatusCreated {
			var a allocation
			is.NoErr(json.Unmarshal(b, &a))
			acked[a.Port] = a.ServiceName
			continue
		}
		is.Equal(status, http.StatusInternalServerError) // a full disk is the server's trouble
		e, ok := decodeError(b)
		is.True(ok) // with the JSON error body
		is.Equal(e.Code, ledger.EINTERNAL)
		is.True(strings.Contains(e.Error, "no space left on device")) // saying why
		failed = b
		break
	}
	if failed == nil {
		t.Fatalf("400 allocations on a full disk all succeeded")
	}
	t.Logf("on a full disk: %d allocations acknowledged, then %s", len(acked), strings.TrimSpace(string(failed)))

	// The CLI, through the daemon, fails clearly too. A commit may still
	// fit into pages bbolt already wrote, so it tries a few times.
	var r result
	for i := range 50 {
		r = run(t, data, "allocate", "--service", fmt.Sprintf("cli-full%d", i))
		if r.code == 0 {
			acked[atoi(t, r.out)] = fmt.Sprintf("cli-full%d", i)
			continue
		}
		break
	}
	is.Equal(r.code, 1)                                         // exit 1
	is.True(strings.HasPrefix(r.err, "ledger: "))               // a message on stderr
	is.Equal(r.out, "")                                         // no port printed
	is.True(strings.Contains(r.err, "no space left on device")) // saying why
	t.Logf("CLI on a full disk: %s", strings.TrimSpace(r.err))

	// Reads keep working and show every acknowledged allocation.
	got := allocations(t, d)
	for port, svc := range acked {
		is.Equal(got[port].ServiceName, svc) // acknowledged allocation kept
	}
	is.Equal(len(got), len(acked)) // and nothing refused was recorded
	r = run(t, data, "status", "--json")
	is.Equal(r.code, 0) // the CLI reads too

	// Space returns: the very next allocation succeeds.
	is.NoErr(os.Remove(filler))
	status, b := allocateHTTP(t, d, "after")
	is.Equal(status, http.StatusCreated) // recovered without a restart
	var a allocation
	is.NoErr(json.Unmarshal(b, &a))
	acked[a.Port] = a.ServiceName
	r = run(t, data, "allocate", "--service", "cli-after")
	is.Equal(r.code, 0) // the CLI allocates again
	acked[atoi(t, r.out)] = "cli-after"

	// The projections catch up once they can write.
	waitFor(t, "port_registry.json holds the allocation made after the space returned", func() bool {
		b, err := os.ReadFile(ledger.Layout{Dir: data}.Registry())
		return err == nil && strings.Contains(string(b), `"cli-after"`)
	})

	d.stop(t)
	n := ledgertest.CheckLog(t, data)
	is.Equal(int(n), len(acked)+1) // every acknowledged allocation and the range, nothing else
	r = run(t, data, "replay", "--verify")
	is.Equal(r.code, 0) // the files equal a replay of the log
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// TestFileSizeLimitDaemon caps the size of the daemon's files at the
// ledger's size with RLIMIT_FSIZE while it runs: a commit that must grow
// the file fails (EFBIG; Go ignores SIGXFSZ), the daemon keeps answering,
// and once the limit is lifted the next allocation succeeds.
func TestFileSizeLimitDaemon(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	d := startDaemon(t, data)
	acked := 0
	status, _ := allocateHTTP(t, d, "before")
	is.Equal(status, http.StatusCreated)
	acked++
	info, err := os.Stat(ledger.Layout{Dir: data}.DB())
	is.NoErr(err)
	setFileSizeLimit(t, d.Pid(), uint64(info.Size()))

	var failed []byte
	for i := range 499 {
		status, b := allocateHTTP(t, d, fmt.Sprintf("capped%d", i))
		if status == http.StatusCreated {
			acked++
			continue
		}
		is.Equal(status, http.StatusInternalServerError) // refused as the server's trouble
		e, ok := decodeError(b)
		is.True(ok)                                          // with the JSON error
		is.True(strings.Contains(e.Error, "file too large")) // saying why
		failed = b
		break
	}
	if failed == nil {
		t.Fatalf("the ledger never needed to grow past %d bytes", info.Size())
	}
	t.Logf("file size capped at %d bytes: %d allocations acknowledged, then %s", info.Size(), acked, strings.TrimSpace(string(failed)))
	is.Equal(len(allocations(t, d)), acked) // reads work and hold every acknowledged allocation

	setFileSizeLimit(t, d.Pid(), 0)
	status, _ = allocateHTTP(t, d, "after")
	is.Equal(status, http.StatusCreated) // the limit lifted: recovered without a restart
	acked++
	d.stop(t)
	is.Equal(int(ledgertest.CheckLog(t, data)), acked+1) // every acknowledged allocation and the range
}
