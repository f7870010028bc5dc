package crashtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptrace"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

const (
	loadClients   = 16
	maxOpsEach    = 100_000 // allocate+release cycles per client, a bound the time limit reaches first
	maxReleaseTry = 1_000   // attempts to release one allocation before the client gives up on it
	requestLimit  = 10 * time.Second
)

// TestCrashKill kills the daemon with SIGKILL at random moments while 16
// clients allocate and release over HTTP, restarts it, and checks that no
// acknowledged event is lost, nothing unasked is in the log, no port has
// two holders, the file is whole after every kill, and the projection files
// catch up to what a replay gives.
func TestCrashKill(t *testing.T) {
	crashRounds(t, syscall.SIGKILL)
}

// TestCrashTerm does the same with SIGTERM, and checks that a clean stop
// answers every request that was in flight, exits 0 and removes its socket.
func TestCrashTerm(t *testing.T) {
	crashRounds(t, syscall.SIGTERM)
}

// Outcome classes of one request.
const (
	outOK        = "answered"
	outRefused   = "refused to connect (nothing sent)"
	outCut       = "cut off while in flight"
	outLateReuse = "sent on a kept-alive connection after the stop began"
	outInternal  = "answered with an internal error"
	outCancelled = "cancelled by the test"
	outRefusedOK = "refused by the ledger (not found, conflict)"
)

// loadClient allocates and releases in a loop and records what it asked for
// and what it was told.
type loadClient struct {
	name     string
	cl       *httpapi.Client
	in       *intent
	acks     *atomic.Int64 // answered commands of all clients
	stopping *atomic.Int64 // odd while a daemon is being stopped or restarted
	outcomes map[string]int
	cut      []string // requests cut off while in flight
	internal []string // requests answered with an internal error
}

func (c *loadClient) run(ctx context.Context) {
	req := ledger.AllocateRequest{ServiceName: c.name, StartedBy: "crashtest", Purpose: "load"}
	for range maxOpsEach {
		if ctx.Err() != nil {
			return
		}
		c.in.sentAllocate(c.name)
		var a ledger.Allocation
		err := c.do(ctx, "allocate", func(ctx context.Context) (err error) {
			a, err = c.cl.Allocate(ctx, req)
			return err
		})
		if err != nil {
			c.pause(ctx)
			continue
		}
		c.in.allocated(a)
		c.acks.Add(1)
		// Release this very allocation until the ledger gives a definite
		// answer: a release whose answer was lost may have committed.
		for range maxReleaseTry {
			if ctx.Err() != nil {
				return
			}
			c.in.sentRelease(c.name)
			var ev ledger.Event
			err := c.do(ctx, "release", func(ctx context.Context) (err error) {
				ev, err = c.cl.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "crashtest", ReleasedBy: c.name, EventID: a.EventID})
				return err
			})
			if err == nil {
				c.in.released(ev, a.EventID)
				c.acks.Add(1)
				break
			}
			if code := ledger.ErrorCode(err); code == ledger.ENOTFOUND || code == ledger.ECONFLICT {
				c.in.gone(a.EventID) // an earlier attempt committed
				break
			}
			c.pause(ctx)
		}
	}
}

// do sends one request and records its outcome. The connection's moment
// tells a request that was in flight when a stop began from one sent on a
// kept-alive connection after it.
func (c *loadClient) do(ctx context.Context, what string, send func(context.Context) error) error {
	var gotConn atomic.Int64 // the stop phase when the connection was taken, +1; 0: none
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(c.stopping.Load() + 1) }}
	rctx, cancel := context.WithTimeout(httptrace.WithClientTrace(ctx, trace), requestLimit)
	err := send(rctx)
	cancel()
	var lerr *ledger.Error
	switch {
	case err == nil:
		c.outcomes[outOK]++
	case ctx.Err() != nil:
		c.outcomes[outCancelled]++
	case errors.As(err, &lerr) && lerr.Code != ledger.EINTERNAL:
		c.outcomes[outRefusedOK]++
	case errors.As(err, &lerr):
		c.outcomes[outInternal]++
		c.internal = append(c.internal, fmt.Sprintf("%s %s: %v", c.name, what, err))
	case isDial(err):
		c.outcomes[outRefused]++
	case gotConn.Load() > 0 && (gotConn.Load()-1)%2 == 1:
		c.outcomes[outLateReuse]++
	default:
		c.outcomes[outCut]++
		c.cut = append(c.cut, fmt.Sprintf("%s %s: %v", c.name, what, err))
	}
	return err
}

// pause waits a little after a failure, so that clients do not spin while
// no daemon runs.
func (c *loadClient) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(5+rand.IntN(10)) * time.Millisecond):
	}
}

// crashRounds runs the load against a daemon that it stops with sig at a
// random moment of every round and starts again.
func crashRounds(t *testing.T, sig syscall.Signal) {
	n := rounds(t)
	data := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	d := startDaemon(t, data, addr)
	token := testbin.TokenFile(t, data)

	in := newIntent()
	var acks, stopping atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*30*time.Second+time.Minute)
	defer cancel()
	clients := make([]*loadClient, loadClients)
	var wg sync.WaitGroup
	for i := range clients {
		c := &loadClient{
			name: fmt.Sprintf("client%02d", i), cl: httpapi.NewClient(base, token), in: in,
			acks: &acks, stopping: &stopping, outcomes: map[string]int{},
		}
		clients[i] = c
		wg.Add(1)
		go func() { defer wg.Done(); c.run(ctx) }()
	}
	stopClients := func() {
		cancel()
		wg.Wait()
	}
	defer stopClients()

	// waitAcks waits until the clients have had more answers from the
	// running daemon.
	waitAcks := func(more int64) {
		t.Helper()
		want := acks.Load() + more
		deadline := time.Now().Add(readyTimeout)
		for acks.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("the clients got %d answers in %s, want %d\n%s", acks.Load()-want+more, readyTimeout, more, d.Stderr)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	var cutAt []int64 // acknowledged commands when each stop began
	var stopped []*testbin.Daemon
	for round := range n {
		waitAcks(2 * loadClients)
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		stopping.Add(1)
		cutAt = append(cutAt, acks.Load())
		code, killedBy := d.Stop(t, sig)
		switch sig {
		case syscall.SIGKILL:
			if killedBy != syscall.SIGKILL {
				t.Fatalf("round %d: the daemon was not killed: exit %d, signal %v\n%s", round, code, killedBy, d.Stderr)
			}
		default:
			if code != 0 {
				t.Fatalf("round %d: after SIGTERM the daemon exited %d (signal %v), want 0\n%s", round, code, killedBy, d.Stderr)
			}
			if _, err := os.Stat(ledger.Layout{Dir: data}.Socket()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("round %d: the socket is still there after a clean stop (%v)", round, err)
			}
		}
		stopped = append(stopped, d)
		checkFile(t, data)
		d = startDaemon(t, data, addr)
		stopping.Add(1)
	}
	waitAcks(2 * loadClients)
	stopClients()
	if code, killedBy := d.Stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("final stop: exit %d (signal %v)\n%s", code, killedBy, d.Stderr)
	}

	facts := checkLog(t, data, in)
	replayVerify(t, data)

	total := map[string]int{}
	var cut, internal []string
	for _, c := range clients {
		for k, v := range c.outcomes {
			total[k] += v
		}
		cut = append(cut, c.cut...)
		internal = append(internal, c.internal...)
	}
	in.mu.Lock()
	t.Logf("%s: %d rounds, stops after %v acknowledged commands; %d allocations and %d releases acknowledged; log: %d events (%d allocated, %d released), %d ports held at the end",
		sigName(sig), n, cutAt, len(in.allocAcked), len(in.releaseAcked), len(facts.events), facts.allocated, facts.released, len(facts.final.Allocs))
	in.mu.Unlock()
	t.Logf("requests: %s", outcomeLine(total))
	problems := internal
	if sig == syscall.SIGTERM {
		problems = append(problems, cut...)
	}
	if len(problems) > 0 {
		t.Errorf("%d requests in flight at a %s failed:\n%s", len(problems), sigName(sig), strings.Join(problems, "\n"))
		for i, d := range append(stopped, d) {
			t.Logf("daemon %d:\n%s", i, d.Stderr)
		}
	}
}

func sigName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// outcomeLine prints outcome counts in a stable order.
func outcomeLine(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %d", k, m[k])
	}
	return b.String()
}
