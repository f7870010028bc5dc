package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/fleet"
	"github.com/portledger/portledger/fleet/hub"
	"github.com/portledger/portledger/ledger"
)

// startHub runs a real NATS server with JetStream in the test process, its
// store under a temporary directory.
func startHub(tb testing.TB, o hub.Options) *hub.Hub {
	tb.Helper()
	if o.Data == "" {
		o.Data = tb.TempDir()
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	h, err := hub.Start(context.Background(), o)
	if err != nil {
		tb.Fatalf("start hub: %v", err)
	}
	tb.Cleanup(h.Shutdown)
	return h
}

// host is one simulated host: its own ledger file, its command side and its
// publisher.
type host struct {
	name string
	log  *ledger.Log
	svc  *commands.Ledger
	pub  *fleet.Publisher

	cancel context.CancelFunc
	done   chan struct{}
	closed bool
}

// startHost opens a ledger under a temporary directory and publishes it as
// name to url.
func startHost(tb testing.TB, name, url string, cfg fleet.PublisherConfig) *host {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "ledger.db")
	log, err := ledger.Open(path, ledger.Options{})
	if err != nil {
		tb.Fatalf("open log: %v", err)
	}
	svc, err := commands.New(commands.Config{
		Log: log,
		// The fleet tests are about publishing, not about the OS probe
		// (tested in commands), and run next to other tests that hold
		// ports: every port of the range counts as free for the OS.
		PortFree: func(int) error { return nil },
	})
	if err != nil {
		tb.Fatalf("commands: %v", err)
	}
	h := &host{name: name, log: log, svc: svc}
	tb.Cleanup(func() { h.close(tb) })
	h.start(tb, url, cfg)
	return h
}

// close stops the host's publisher and closes its ledger, once.
func (h *host) close(tb testing.TB) {
	if h.closed {
		return
	}
	h.closed = true
	h.stop()
	h.svc.Close()
	if err := h.log.Check(); err != nil {
		tb.Errorf("check log: %v", err)
	}
	h.log.Close()
}

// start (re)starts the host's publisher.
func (h *host) start(tb testing.TB, url string, cfg fleet.PublisherConfig) {
	tb.Helper()
	cfg.Log, cfg.Host, cfg.Events = h.log, h.name, h.svc
	cfg.Conn.URL = url
	if cfg.ChainHead == nil { // as the daemon does: each round's newest event carries the head
		log := h.log
		cfg.ChainHead = func(id ulid.ULID) (string, bool) { return fleet.ChainHeader(log.ChainHead(), id) }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	pub, err := fleet.NewPublisher(cfg)
	if err != nil {
		tb.Fatalf("publisher: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.pub, h.cancel, h.done = pub, cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		_ = pub.Run(ctx)
	}()
}

// stop stops the publisher, which saves its cursor.
func (h *host) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

// allocate allocates a port for service on the host.
func (h *host) allocate(tb testing.TB, service string) int {
	tb.Helper()
	a, err := h.svc.Allocate(context.Background(), ledger.AllocateRequest{ServiceName: service, StartedBy: "test", Purpose: "fleet"})
	if err != nil {
		tb.Fatalf("allocate on %s: %v", h.name, err)
	}
	return a.Port
}

// release frees a port of the host.
func (h *host) release(tb testing.TB, port int, reason string) {
	tb.Helper()
	if _, err := h.svc.Release(context.Background(), ledger.ReleaseRequest{Port: port, Reason: reason}); err != nil {
		tb.Fatalf("release on %s: %v", h.name, err)
	}
}

// waitCaughtUp waits until the host's publisher has every event on the
// stream.
func (h *host) waitCaughtUp(tb testing.TB, within time.Duration) {
	tb.Helper()
	waitFor(tb, within, h.name+" caught up", func() bool {
		st := h.pub.Status()
		return st.Connected && st.LagEvents == 0 && st.Published == h.log.LastID()
	})
}

// waitFor polls cond every 10 ms until it holds or within passes.
func waitFor(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reader connects a fleet reader to url.
func reader(tb testing.TB, url string) (*fleet.Reader, *nats.Conn) {
	tb.Helper()
	nc, err := fleet.Connect(fleet.ConnOptions{URL: url})
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	r, err := fleet.NewReader(nc, nil)
	if err != nil {
		tb.Fatalf("reader: %v", err)
	}
	return r, nc
}

// hostEvents reads every event message of host on the stream, in stream
// order, with an ordered consumer of its own (not the Reader). A cluster
// that just lost a hub may refuse or stall a consumer while it elects new
// leaders (longer under the race detector on a loaded machine): each try
// has 5 s, and the read is tried again for up to 60 s.
func hostEvents(tb testing.TB, url, host string) []ulid.ULID {
	tb.Helper()
	_, nc := reader(tb, url)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ids, err := readHostEvents(nc, host)
		if err == nil {
			return ids
		}
		if time.Now().After(deadline) {
			tb.Fatalf("events of %s: %v", host, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func readHostEvents(nc *nats.Conn, host string) ([]ulid.ULID, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The ordered consumer recreates itself when its server goes away, by
	// default forever and outside any context: a few tries, then the
	// error, and hostEvents tries the whole read again.
	cons, err := js.OrderedConsumer(ctx, fleet.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{fleet.HostEvents(host)}, MaxResetAttempts: 5})
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("consumer info: %w", err)
	}
	n := int(info.NumPending)
	var ids []ulid.ULID
	for len(ids) < n {
		batch, err := cons.Fetch(min(n-len(ids), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			var e ledger.Event
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				return nil, fmt.Errorf("event: %w", err)
			}
			if want := fleet.MsgID(host, e.ID); m.Headers().Get(nats.MsgIdHdr) != want {
				return nil, fmt.Errorf("message ID %q, want %q", m.Headers().Get(nats.MsgIdHdr), want)
			}
			ids = append(ids, e.ID)
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		if got == 0 {
			return nil, fmt.Errorf("fetch: no messages, %d of %d read", len(ids), n)
		}
	}
	return ids, nil
}

// logIDs reads every ID of a log, in order.
func logIDs(tb testing.TB, log *ledger.Log) []ulid.ULID {
	tb.Helper()
	var ids []ulid.ULID
	if err := log.Scan(ulid.ULID{}, ulid.ULID{}, func(e ledger.Event) error {
		ids = append(ids, e.ID)
		return nil
	}); err != nil {
		tb.Fatalf("scan: %v", err)
	}
	return ids
}

// testCtx is a test's context for the fleet's reads: a read that stalls (a
// cluster electing leaders, a server gone) fails the test after 2 min
// instead of running into the package's timeout with no word of where.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}
