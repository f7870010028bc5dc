package commands_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/internal/ledgertest"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// busyTimeline allocates and releases ports for services named svc-00 to
// svc-(names-1), at random but the same every run, one event every 10 s
// from t0 for steps steps, with three release reasons.
func busyTimeline(t *testing.T, l *commands.Ledger, clock *ledgertest.Clock, names, steps int) {
	t.Helper()
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(17, 3))
	var held []int
	for i := range steps {
		clock.Set(t0.Add(time.Duration(i) * 10 * time.Second))
		if len(held) > 0 && (rnd.IntN(100) < 45 || len(held) > 60) {
			j := rnd.IntN(len(held))
			port := held[j]
			held = append(held[:j], held[j+1:]...)
			reason := []string{"done", "crashed", ""}[rnd.IntN(3)]
			if _, err := l.Release(ctx, ledger.ReleaseRequest{Port: port, Reason: reason}); err != nil {
				t.Fatalf("release %d: %v", port, err)
			}
			continue
		}
		a, err := l.Allocate(ctx, ledger.AllocateRequest{ServiceName: fmt.Sprintf("svc-%02d", rnd.IntN(names)), StartedBy: "test"})
		if err != nil {
			t.Fatalf("allocate: %v", err)
		}
		held = append(held, a.Port)
	}
}

// TestUsageSpilledAndPagedIsTheFold reads a window of 37 services with
// room for 4 in memory, so that the counts go through the temporary file
// in many runs, a service's counts in several: whole, by page (pages of up
// to 3 services counted in memory alone, larger ones through the file) and
// for one service, the answer is the one the plain fold holds in memory.
func TestUsageSpilledAndPagedIsTheFold(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the counts spill
	clock := ledgertest.NewClock(t0, 0)
	l, log := openLedger(t, ledger.Options{Now: clock.Now}, commands.Config{
		Now: clock.Now, SnapshotEvery: 7, UsageMemory: 4,
		PortFree: func(int) error { return nil },
	}, auditRange)
	busyTimeline(t, l, clock, 37, 400)

	since, until := t0.Add(500*time.Second), t0.Add(3500*time.Second)
	q := ledger.UsageQuery{Since: ledger.SinceID(since), Until: ledger.UntilID(until)}

	// The plain fold of the window, every service in memory at once.
	reg, err := projection.StateAt(log, ledger.PrevID(q.Since))
	is.NoErr(err)
	fold := projection.NewUsage(reg, ledger.IDTime(q.Since))
	is.NoErr(log.ScanTypes(ledger.PrevID(q.Since), q.Until, projection.UsageTypes, func(e ledger.Event) error {
		fold.Apply(e)
		return nil
	}))
	want := fold.Result(ledger.IDTime(q.Until), "")
	is.True(len(want) > 30) // most services used the window

	got, err := l.Usage(ctx, q)
	is.NoErr(err)
	is.Equal(got, want) // spilled, the same answer

	// The temporary file has no name while it is read (a daemon killed
	// midway leaves nothing), and none is left after.
	var left []os.DirEntry
	_, err = l.UsageEach(ctx, q, "", 0, func(ledger.ServiceUsage) error {
		left, err = os.ReadDir(tmp)
		return err
	})
	is.NoErr(err)
	if runtime.GOOS != "windows" {
		is.Equal(len(left), 0) // unlinked while it is read
	}
	left, err = os.ReadDir(tmp)
	is.NoErr(err)
	is.Equal(len(left), 0) // and gone after

	for _, limit := range []int{1, 2, 3, 5, 36, 37, 100} {
		var pages []ledger.ServiceUsage
		after, n := "", 0
		for {
			var page []ledger.ServiceUsage
			next, err := l.UsageEach(ctx, q, after, limit, func(u ledger.ServiceUsage) error {
				page = append(page, u)
				return nil
			})
			is.NoErr(err)
			is.True(len(page) <= limit) // a page holds at most limit services
			pages = append(pages, page...)
			if n++; next == "" {
				break
			}
			is.Equal(next, page[len(page)-1].Service) // the next page goes on from the last service
			after = next
		}
		if !reflect.DeepEqual(pages, want) {
			t.Fatalf("pages of %d: %d services, want the %d of the fold, each once, in order", limit, len(pages), len(want))
		}
		is.Equal(n, (len(want)+limit-1)/limit) // no empty last page
	}

	one, err := l.Usage(ctx, ledger.UsageQuery{Since: q.Since, Until: q.Until, Service: want[3].Service})
	is.NoErr(err)
	is.Equal(one, want[3:4]) // one service, through the spill

	_, err = l.UsageEach(ctx, q, "", -1, func(ledger.ServiceUsage) error { return nil })
	is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // a negative limit
	stop := fmt.Errorf("enough")
	_, err = l.UsageEach(ctx, q, "", 0, func(ledger.ServiceUsage) error { return stop })
	is.Equal(err, stop) // fn's error ends the read
}
