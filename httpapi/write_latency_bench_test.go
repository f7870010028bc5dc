package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portledger/portledger/ledger"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkWriteLatency takes one client's durable write over loopback
// HTTP apart, against the disk in the same run. Each op is an allocate and
// a release through the real server and client (two writes), then one bare
// bbolt Update of another file on the same disk and one GET /healthz. It
// reports the p50 of:
//
//   - write-µs: one write as the client sees it;
//   - handler-µs: the same write from the server's handler in to its
//     answer out (guard, routing, JSON, the command);
//   - command-µs: the command alone (decide, commit, apply), inside it;
//   - bare-update-µs: one bbolt Update with one small put;
//   - ping-µs: one round trip with nothing behind it;
//
// and cycle/bare-update, a whole cycle's p50 over a bare Update's. What a
// write adds to its commit is write-µs minus command-µs, of which the
// handler's own part is handler-µs minus command-µs; the rest is the round
// trip, the two goroutines' wake-ups after the commit's fsyncs included.
func BenchmarkWriteLatency(b *testing.B) {
	dir := b.TempDir()
	svc := benchLedger(b, dir)
	anchor, err := bolt.Open(filepath.Join(dir, "anchor.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer anchor.Close()

	var mu sync.Mutex
	var handler, command []time.Duration
	timed := &timedService{Service: svc, record: func(d time.Duration) { mu.Lock(); command = append(command, d); mu.Unlock() }}
	h := NewServer(Config{Service: timed, Events: svc, Token: testToken, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: time.Now, Heartbeat: DefaultHeartbeat})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		h.ServeHTTP(w, r)
		if r.Method == http.MethodPost {
			mu.Lock()
			handler = append(handler, time.Since(t0))
			mu.Unlock()
		}
	}))
	go srv.Serve(ln)
	defer srv.Close()
	c := NewClient("http://"+ln.Addr().String(), testToken)
	ctx := context.Background()

	var write, cycle, bare, ping []time.Duration
	val := []byte(`{"service_name":"bench","started_by":"bench"}`)
	i := 0
	for b.Loop() {
		t0 := time.Now()
		a, err := c.Allocate(ctx, ledger.AllocateRequest{ServiceName: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := c.Release(ctx, ledger.ReleaseRequest{Port: a.Port}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		write = append(write, t1.Sub(t0), t2.Sub(t1))
		cycle = append(cycle, t2.Sub(t0))

		i++
		t3 := time.Now()
		if err := anchor.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("anchor"))
			if err != nil {
				return err
			}
			return bk.Put(fmt.Appendf(nil, "%012d", i), val)
		}); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		if err := c.Ping(ctx); err != nil {
			b.Fatal(err)
		}
		bare = append(bare, t4.Sub(t3))
		ping = append(ping, time.Since(t4))
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	us := func(d []time.Duration) float64 { return float64(median(d).Nanoseconds()) / 1e3 }
	b.ReportMetric(us(write), "write-µs")
	b.ReportMetric(us(handler), "handler-µs")
	b.ReportMetric(us(command), "command-µs")
	b.ReportMetric(us(bare), "bare-update-µs")
	b.ReportMetric(us(ping), "ping-µs")
	b.ReportMetric(us(cycle)/us(bare), "cycle/bare-update")
}

// median returns the p50 of d (sorted in place); zero for none.
func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// timedService times the allocates and releases that go through it.
type timedService struct {
	ledger.Service
	record func(time.Duration)
}

func (s *timedService) Allocate(ctx context.Context, r ledger.AllocateRequest) (ledger.Allocation, error) {
	t0 := time.Now()
	defer func() { s.record(time.Since(t0)) }()
	return s.Service.Allocate(ctx, r)
}

func (s *timedService) Release(ctx context.Context, r ledger.ReleaseRequest) (ledger.Event, error) {
	t0 := time.Now()
	defer func() { s.record(time.Since(t0)) }()
	return s.Service.Release(ctx, r)
}

// Range is the wrapped service's, for the answer's range header.
func (s *timedService) Range() ledger.Range {
	return s.Service.(interface{ Range() ledger.Range }).Range()
}
