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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

// testRange is a range of high ports that nothing on a development machine
// is likely to hold, so the real OS probe can be used.
var testRange = ledger.Range{Lo: 27000, Hi: 27100}

// stubWatchdog stands in for the watchdog, whose counters the server only
// relays.
type stubWatchdog struct {
	mu     sync.Mutex
	status ledger.WatchdogStatus
	result ledger.SweepResult
	sweeps int
}

func (w *stubWatchdog) Status() ledger.WatchdogStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

func (w *stubWatchdog) Sweep(ctx context.Context) (ledger.SweepResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sweeps++
	return w.result, nil
}

// testToken is the bearer token of the test servers; the helpers send it
// unless told noToken.
const testToken = "test-token"

// noToken asks call and raw to send no Authorization header.
const noToken = "\x00none"

// testEnv is a real server on a real ledger file.
type testEnv struct {
	token string // the server's token, sent by call, raw and client
	log   *ledger.Log
	svc   *commands.Ledger
	srv   *httptest.Server
	wd    *stubWatchdog
	logs  *bytes.Buffer // what the server logged
}

// newEnv opens a ledger in a temp folder, sets testRange, and serves it. opts
// may change the server's Config before it starts.
func newEnv(t *testing.T, opts ...func(*Config)) *testEnv {
	t.Helper()
	is := is.New(t)
	log, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{})
	is.NoErr(err) // open log
	svc, err := commands.New(commands.Config{Log: log})
	is.NoErr(err)                                           // start commands
	is.NoErr(svc.SetRange(context.Background(), testRange)) // set test range
	wd := &stubWatchdog{
		status: ledger.WatchdogStatus{Running: true, CheckInterval: 30, ChecksPerformed: 42, IssuesDetected: 3, MonitoredPorts: 7},
		result: ledger.SweepResult{At: time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC), DurationMS: 1.5,
			Ports:     []ledger.PortCheck{{Port: 27000, ServiceName: "api", PID: 1234, Alive: true, Listening: true, Health: ledger.HealthHealthy}},
			Conflicts: []ledger.Conflict{}},
	}
	logs := &bytes.Buffer{}
	cfg := Config{
		Service:  svc,
		Events:   svc,
		Watchdog: wd,
		Token:    testToken,
		Logger:   slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	// The real server's connection hook, so that the server knows TCP
	// from the socket as the daemon's does.
	srv := httptest.NewUnstartedServer(NewServer(cfg))
	srv.Config.ConnContext = ConnContext
	srv.Start()
	t.Cleanup(func() {
		// Closing the ledger first ends open event streams, which
		// srv.Close would otherwise wait for.
		_ = svc.Close()
		srv.Close()
		is.NoErr(log.Close()) // close log
	})
	return &testEnv{token: cfg.Token, log: log, svc: svc, srv: srv, wd: wd, logs: logs}
}

// lockedWriter lets the server's goroutines log into one buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// call sends one request and decodes a JSON answer into a map. token is
// sent as a bearer token: "" sends the server's own, noToken none. A body
// goes as application/json.
func (e *testEnv) call(t *testing.T, method, path, body, token string) (int, map[string]any) {
	t.Helper()
	status, raw := e.raw(t, method, path, body, token)
	if len(bytes.TrimSpace(raw)) == 0 {
		return status, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %v: %q", method, path, err, raw)
	}
	return status, m
}

// raw sends one request and returns the status and body.
func (e *testEnv) raw(t *testing.T, method, path, body, token string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token == "" {
		token = e.token
	}
	if token != noToken && token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	// The timeout only turns a hang (an event stream answered where an
	// error was due) into a failure.
	c := e.srv.Client()
	c.Timeout = 30 * time.Second
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// client returns a Client of the test server with its token.
func (e *testEnv) client() *Client { return NewClient(e.srv.URL, e.token) }

// authorize adds the test server's token to req.
func (e *testEnv) authorize(req *http.Request) *http.Request {
	req.Header.Set("Authorization", "Bearer "+e.token)
	return req
}

// allocate hands out a port through the service itself.
func (e *testEnv) allocate(t *testing.T, service string) ledger.Allocation {
	t.Helper()
	a, err := e.svc.Allocate(context.Background(), ledger.AllocateRequest{ServiceName: service, StartedBy: "test", Purpose: "testing"})
	if err != nil {
		t.Fatalf("allocate %s: %v", service, err)
	}
	return a
}

// logState is what must not change when a request is refused.
type logState struct {
	count uint64
	last  ulid.ULID
}

func (e *testEnv) state(t *testing.T) logState {
	t.Helper()
	n, err := e.log.Count()
	if err != nil {
		t.Fatal(err)
	}
	return logState{count: n, last: e.log.LastID()}
}

// checkAllocationJSON compares an allocation object field by field with
// the seed's shape.
func checkAllocationJSON(t *testing.T, m map[string]any, want ledger.Allocation) {
	t.Helper()
	is := is.NewRelaxed(t)
	for _, k := range []string{"port", "service_name", "started_by", "purpose", "pid", "allocated_at",
		"health_status", "request_count", "error_count", "event_id"} {
		_, ok := m[k]
		is.True(ok) // allocation has every seed field
		if !ok {
			t.Logf("missing field %q in %v", k, m)
		}
	}
	is.Equal(m["port"], float64(want.Port))                  // port
	is.Equal(m["service_name"], want.ServiceName)            // service_name
	is.Equal(m["started_by"], want.StartedBy)                // started_by
	is.Equal(m["purpose"], want.Purpose)                     // purpose
	is.Equal(m["pid"], float64(want.PID))                    // pid
	is.Equal(m["health_status"], string(want.HealthStatus))  // health_status
	is.Equal(m["request_count"], float64(want.RequestCount)) // request_count
	is.Equal(m["error_count"], float64(want.ErrorCount))     // error_count
	is.Equal(m["event_id"], want.EventID.String())           // event_id
	at, _ := m["allocated_at"].(string)
	got, err := time.Parse(time.RFC3339Nano, at)
	is.NoErr(err)                        // allocated_at is RFC 3339
	is.True(got.Equal(want.AllocatedAt)) // allocated_at
}

// checkError checks an error answer: its status, and a JSON body with a
// message and the code.
func checkError(t *testing.T, status int, m map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	is := is.NewRelaxed(t)
	is.Equal(status, wantStatus)  // status
	is.Equal(m["code"], wantCode) // code
	msg, _ := m["error"].(string)
	is.True(msg != "") // error message present
}
