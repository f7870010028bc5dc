package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

// fuzzRange is the managed range of the fuzzed server: the ports the fault
// tests own, away from the other packages' tests.
var fuzzRange = ledger.Range{Lo: 28900, Hi: 28999}

// fuzzRoutes are the routes that read a request body.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/api/ports/allocations"},
	{"POST", "/api/ports/allocations/{held}/pid"},
	{"POST", "/api/ports/allocations/{held}/stats"},
	{"PUT", "/api/ports/range"},
	{"POST", "/api/ports/import"},
}

// fuzzServer is a real server on a real ledger file, shared by the inputs
// of one fuzzing process, with one allocation that the pid and stats routes
// address.
type fuzzServer struct {
	log  *ledger.Log
	svc  *commands.Ledger
	srv  *httptest.Server
	logs *lockedWriter
	held int
}

func newFuzzServer(tb testing.TB) *fuzzServer {
	tb.Helper()
	log, err := ledger.Open(filepath.Join(tb.TempDir(), "ledger.db"), ledger.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := commands.New(commands.Config{Log: log})
	if err != nil {
		tb.Fatal(err)
	}
	logs := &lockedWriter{w: &bytes.Buffer{}}
	srv := httptest.NewServer(NewServer(Config{Service: svc, Events: svc, Token: testToken,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}))
	tb.Cleanup(func() {
		_ = svc.Close()
		srv.Close()
		_ = log.Close()
	})
	fs := &fuzzServer{log: log, svc: svc, srv: srv, logs: logs}
	fs.reset(tb)
	return fs
}

// reset brings the ledger back to the fuzz range with exactly one
// allocation, whatever the last input did.
func (fs *fuzzServer) reset(tb testing.TB) {
	tb.Helper()
	// A hung writer must fail the input, not stall the fuzzer.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	allocs, err := fs.svc.Allocations(ctx, ledger.AllocationQuery{})
	if err != nil {
		tb.Fatal(err)
	}
	kept := false
	for _, a := range allocs {
		if a.Port == fs.held && fuzzRange.Contains(a.Port) && !kept {
			kept = true
			continue
		}
		if _, err := fs.svc.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "fuzz reset"}); err != nil {
			tb.Fatalf("release %d: %v", a.Port, err)
		}
	}
	if err := fs.svc.SetRange(ctx, fuzzRange); err != nil {
		tb.Fatalf("set range: %v", err)
	}
	if !kept {
		a, err := fs.svc.Allocate(ctx, ledger.AllocateRequest{ServiceName: "held", StartedBy: "fuzz", Purpose: "pid and stats target"})
		if err != nil {
			tb.Fatalf("allocate: %v", err)
		}
		fs.held = a.Port
	}
}

type fuzzState struct {
	count uint64
	last  string
}

func (fs *fuzzServer) state(tb testing.TB) fuzzState {
	n, err := fs.log.Count()
	if err != nil {
		tb.Fatal(err)
	}
	return fuzzState{n, fs.log.LastID().String()}
}

// FuzzRequestBody sends hostile bodies to every route that reads one, on a
// real server over real HTTP. No body may cause a 5xx (a full range's 503
// "exhausted" aside, which is an answer, not a fault) or a panic; every
// 4xx carries the JSON error; a refused request leaves the log unchanged.
func FuzzRequestBody(f *testing.F) {
	seeds := []struct {
		route uint8
		body  string
	}{
		{0, `{"service_name":"api","started_by":"fuzz","purpose":"p"}`},
		{0, `{"service_name":"api","port":28950}`},
		{0, `{"service_name":"api","pid":1}`},
		{0, `{"service_name":"api","health_url":"http://127.0.0.1:28950/health"}`},
		{0, `{"service_name":"api","bogus":1}`},
		{0, `{"service_name":""}`},
		{0, `{"service_name":"a\u0000b"}`},
		{0, `{"service_name":"api","port":-1}`},
		{0, `{"service_name":"api","port":1e400}`},
		{0, `{"service_name":"api"} {"service_name":"again"}`},
		{0, `[`},
		{0, `null`},
		{0, `"` + strings.Repeat("x", 70<<10) + `"`},
		{0, ``},
		{1, `{"pid":1}`},
		{1, `{"pid":-5}`},
		{1, `{"pid":"12"}`},
		{2, `{"request_count":10,"error_count":1}`},
		{2, `{"request_count":-1,"error_count":0}`},
		{2, `{"request_count":9223372036854775808}`},
		{3, `{"port_range":"28900-28999"}`},
		{3, `{"port_range":"9000-8000"}`},
		{3, `{"port_range":"0-65536"}`},
		{4, `{"events":[]}`},
		{4, `{"events":[{"id":"01JCZ6Y0000000000000000000","type":"allocated","at":"2024-11-15T14:30:00Z","port":28901,"service_name":"old"}]}`},
		{4, `{"events":[{"type":"released"}]}`},
		{4, `{"events":null}`},
	}
	for _, s := range seeds {
		f.Add(s.route, []byte(s.body))
	}
	fs := newFuzzServer(f)
	client := fs.srv.Client()
	client.Timeout = 30 * time.Second
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := strings.ReplaceAll(rt.path, "{held}", strconv.Itoa(fs.held))
		before := fs.state(t)
		req, err := http.NewRequest(rt.method, fs.srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", rt.method, path, err)
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: read answer: %v", rt.method, path, err)
		}
		status := resp.StatusCode
		var e errorBody
		if status >= 400 {
			if err := json.Unmarshal(answer, &e); err != nil || e.Error == "" || e.Code == "" {
				t.Fatalf("%s %s %q: %d without the JSON error: %q", rt.method, path, body, status, answer)
			}
		}
		switch {
		case status == http.StatusServiceUnavailable && e.Code == ledger.EEXHAUSTED:
		case status >= 500:
			t.Fatalf("%s %s %q: %d %s\nserver log:\n%s", rt.method, path, body, status, answer, fs.logs.String())
		case status >= 400:
			if after := fs.state(t); after != before {
				t.Fatalf("%s %s %q: refused with %d but the log changed: %v -> %v", rt.method, path, body, status, before, after)
			}
		}
		if status < 300 {
			fs.reset(t)
		}
	})
}

// String returns what was written so far.
func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.w.(*bytes.Buffer); ok {
		return b.String()
	}
	return ""
}
