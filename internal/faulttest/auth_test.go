package faulttest

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// TestDaemonToken starts the real daemon with a token: every /api route,
// the event stream included, answers 401 with the JSON error without it or
// with a wrong one, and changes nothing; with it, the API and the stream
// work; /healthz stays open.
func TestDaemonToken(t *testing.T) {
	const token = "faulttest-token-0123456789"
	data := t.TempDir()
	d := startDaemon(t, data, "--token", token)
	status, b := call(t, "POST", d.url("/api/ports/allocations"), `{"service_name":"held"}`, token)
	if status != http.StatusCreated {
		t.Fatalf("allocate with the token: %d %s", status, b)
	}
	routes := []struct{ method, path, body string }{
		{"GET", "/api/ports/status", ""},
		{"GET", "/api/ports/status?at=1h", ""},
		{"GET", "/api/ports/allocations", ""},
		{"GET", "/api/ports/allocations/43500", ""},
		{"POST", "/api/ports/allocations", `{"service_name":"intruder"}`},
		{"POST", "/api/ports/allocations/43500/pid", `{"pid":1}`},
		{"POST", "/api/ports/allocations/43500/stats", `{"request_count":1,"error_count":0}`},
		{"DELETE", "/api/ports/allocations/43500", ""},
		{"POST", "/api/ports/health-check", ""},
		{"GET", "/api/ports/watchdog/status", ""},
		{"GET", "/api/ports/history", ""},
		{"GET", "/api/ports/events", ""},
		{"GET", "/api/ports/events?after=00000000000000000000000000", ""},
		{"PUT", "/api/ports/range", `{"port_range":"43500-43510"}`},
		{"GET", "/api/ports/no-such-route", ""},
	}
	before := run(t, data, "history", "--json", "--token", token)
	for _, rt := range routes {
		for _, tok := range []string{"", "wrong", token + "x", strings.ToUpper(token)} {
			status, b := call(t, rt.method, d.url(rt.path), rt.body, tok)
			e, ok := decodeError(b)
			if status != http.StatusUnauthorized || !ok || e.Code != "unauthorized" {
				t.Errorf("%s %s with token %q: %d %s, want 401 unauthorized", rt.method, rt.path, tok, status, b)
			}
		}
	}
	is := is.New(t)
	after := run(t, data, "history", "--json", "--token", token)
	is.Equal(after.out, before.out) // nothing was written

	// The CLI through the socket needs the token as well.
	r := run(t, data, "status")
	is.Equal(r.code, 1) // refused without the token
	is.True(strings.Contains(r.err, "token"))
	r = run(t, data, "status", "--token", token)
	is.Equal(r.code, 0) // and works with it

	status, _ = call(t, "GET", d.url("/healthz"), "", "")
	is.Equal(status, http.StatusOK) // healthz stays open

	// The stream opens with the token and delivers.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", d.url("/api/ports/events"), nil)
	is.NoErr(err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	is.NoErr(err)
	defer resp.Body.Close()
	is.Equal(resp.StatusCode, http.StatusOK)
	status, _ = call(t, "POST", d.url("/api/ports/allocations"), `{"service_name":"streamed"}`, token)
	is.Equal(status, http.StatusCreated)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.Contains(sc.Text(), `"streamed"`) {
	}
	is.NoErr(sc.Err()) // the allocation arrived on the stream
}

// TestFileModes checks the modes a fresh data directory gets, whether the
// daemon or an embedded CLI call creates it: the directory and the
// ledger's folders 0700, ledger.db and the projection files 0600, the
// socket 0600.
func TestFileModes(t *testing.T) {
	check := func(t *testing.T, data string, withSocket bool) {
		t.Helper()
		layout := ledger.Layout{Dir: data}
		want := map[string]os.FileMode{
			data:              0o700 | os.ModeDir,
			layout.DB():       0o600,
			layout.Registry(): 0o600,
			layout.LogsDir():  0o700 | os.ModeDir,
		}
		if withSocket {
			want[layout.Socket()] = 0o600 | os.ModeSocket
		}
		for path, mode := range want {
			info, err := os.Stat(path)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			if got := info.Mode() & (os.ModePerm | os.ModeDir | os.ModeSocket); got != mode {
				t.Errorf("%s: mode %v, want %v", path, got, mode)
			}
		}
		// Every folder the ledger made is private.
		for _, dir := range []string{layout.Dir + "/databases", layout.Dir + "/databases/port_ledger", layout.Dir + "/databases/port_registry", layout.Dir + "/logs"} {
			if info, err := os.Stat(dir); err == nil && info.Mode().Perm() != 0o700 {
				t.Errorf("%s: mode %v, want 0700", dir, info.Mode().Perm())
			}
		}
	}
	t.Run("serve", func(t *testing.T) {
		data := t.TempDir() + "/fresh"
		d := startDaemon(t, data)
		if r := run(t, data, "allocate", "--service", "modes"); r.code != 0 {
			t.Fatalf("allocate: %s", r.err)
		}
		waitFor(t, "port_registry.json written", func() bool {
			_, err := os.Stat(ledger.Layout{Dir: data}.Registry())
			return err == nil
		})
		check(t, data, true)
		d.stop(t)
	})
	t.Run("embedded", func(t *testing.T) {
		data := t.TempDir() + "/fresh"
		if r := run(t, data, "allocate", "--service", "modes"); r.code != 0 {
			t.Fatalf("allocate: %s", r.err)
		}
		check(t, data, false)
	})
}
