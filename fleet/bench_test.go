//go:build linux

package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/fleet"
	"github.com/portledger/portledger/fleet/hub"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// commit16 runs 16 clients that allocate and release on hs for d and
// returns the events committed per second, and, through seen, the commit
// time of every allocation by its event ID.
func commit16(b *testing.B, hs *host, d time.Duration, committed map[ulid.ULID]time.Time, mu *sync.Mutex) float64 {
	b.Helper()
	ctx := context.Background()
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	var events sync.Map
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; time.Now().Before(stop); i++ {
				a, err := hs.svc.Allocate(ctx, allocReq(fmt.Sprintf("c%d-%d", c, i%3)))
				if err != nil {
					b.Error(err)
					return
				}
				if committed != nil {
					mu.Lock()
					committed[a.EventID] = time.Now()
					mu.Unlock()
				}
				if _, err := hs.svc.Release(ctx, relReq(a.Port, "bench")); err != nil {
					b.Error(err)
					return
				}
				n += 2
			}
			events.Store(c, n)
		}()
	}
	wg.Wait()
	total := 0
	events.Range(func(_, v any) bool { total += v.(int); return true })
	return float64(total) / d.Seconds()
}

// BenchmarkPublishRate compares the events per second one publisher puts on
// a hub on the same machine (file storage) with the rate at which the same
// host commits them with 16 clients: the anchor, measured in the same run.
// The publisher drains a backlog of everything the 16 clients committed.
func BenchmarkPublishRate(b *testing.B) {
	for range b.N {
		h := startHub(b, hub.Options{})
		hs := startHost(b, "alpha", "nats://127.0.0.1:1", fleet.PublisherConfig{}) // nothing listens: a backlog builds
		commitRate := commit16(b, hs, 3*time.Second, nil, nil)
		hs.stop()
		n, _ := hs.log.Count()
		start := time.Now()
		hs.start(b, h.ClientURL(), fleet.PublisherConfig{})
		hs.waitCaughtUp(b, 5*time.Minute)
		pubRate := float64(n) / time.Since(start).Seconds()
		b.ReportMetric(commitRate, "commit-events/s")
		b.ReportMetric(pubRate, "publish-events/s")
		b.ReportMetric(pubRate/commitRate, "publish/commit")
	}
}

// BenchmarkCommitToVisible16 measures, under 16 clients, the time from an
// allocation's commit (its answer to the client) until a reader sees it: on
// the stream (a subscriber of the host's subjects), and in the live view (a
// watcher of the bucket: what `fleet status` shows). The clients release at
// once, so an allocation and its release often go out in one round and the
// live view only ever shows the release: the live-view lag is of those it
// did show (seen-fraction).
func BenchmarkCommitToVisible16(b *testing.B) {
	for range b.N {
		h := startHub(b, hub.Options{})
		hs := startHost(b, "alpha", h.ClientURL(), fleet.PublisherConfig{})
		_, nc := reader(b, h.ClientURL())
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithCancel(context.Background())
		kv, err := js.KeyValue(ctx, fleet.LiveBucket)
		if err != nil {
			b.Fatal(err)
		}
		w, err := kv.Watch(ctx, "alpha.*", jetstream.UpdatesOnly())
		if err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		committed := map[ulid.ULID]time.Time{}
		seen := map[ulid.ULID]time.Time{}
		onStream := map[ulid.ULID]time.Time{}
		sub, err := nc.Subscribe(fleet.HostEvents("alpha"), func(m *nats.Msg) {
			var e ledger.Event
			if json.Unmarshal(m.Data, &e) == nil {
				mu.Lock()
				if _, ok := onStream[e.ID]; !ok {
					onStream[e.ID] = time.Now()
				}
				mu.Unlock()
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for e := range w.Updates() {
				if e == nil || e.Operation() != jetstream.KeyValuePut {
					continue
				}
				var a ledger.Allocation
				if json.Unmarshal(e.Value(), &a) == nil {
					mu.Lock()
					if _, ok := seen[a.EventID]; !ok {
						seen[a.EventID] = time.Now()
					}
					mu.Unlock()
				}
			}
		}()
		rate := commit16(b, hs, 3*time.Second, committed, &mu)
		hs.waitCaughtUp(b, time.Minute)
		time.Sleep(200 * time.Millisecond)
		cancel()
		<-done
		_ = sub.Unsubscribe()
		mu.Lock()
		lagsOf := func(at map[ulid.ULID]time.Time) []time.Duration {
			var lags []time.Duration
			for id, t := range committed {
				if s, ok := at[id]; ok {
					lags = append(lags, max(0, s.Sub(t)))
				}
			}
			slices.Sort(lags)
			if len(lags) == 0 {
				b.Fatal("no allocation seen")
			}
			return lags
		}
		stream, live := lagsOf(onStream), lagsOf(seen)
		mu.Unlock()
		b.ReportMetric(rate, "commit-events/s")
		b.ReportMetric(ms(stream[len(stream)/2]), "stream-lag-p50-ms")
		b.ReportMetric(ms(stream[len(stream)*99/100]), "stream-lag-p99-ms")
		b.ReportMetric(ms(live[len(live)/2]), "live-lag-p50-ms")
		b.ReportMetric(ms(live[len(live)*99/100]), "live-lag-p99-ms")
		b.ReportMetric(float64(len(live))/float64(len(committed)), "seen-fraction")
	}
}

// BenchmarkFleetScale publishes FLEET_BENCH_HOSTS simulated hosts (default
// 100) with FLEET_BENCH_EVENTS events each (default 2,000) to a real
// ledger-hub process, then measures fleet status now and at a moment, and
// fleet who HOST:PORT at a moment, over random hosts, ports and moments;
// and the hub's resident memory and its store's bytes per event.
func BenchmarkFleetScale(b *testing.B) {
	nHosts := envInt("FLEET_BENCH_HOSTS", 100)
	nEvents := envInt("FLEET_BENCH_EVENTS", 2000)
	for range b.N {
		addr := testbin.FreeAddr(b)
		data := b.TempDir()
		hp := startHubProc(b, addr, "--data", data)
		url := "nats://" + addr
		rssIdle := rssKB(b, hp.cmd.Process.Pid)
		// Each host's log: allocations and releases over 100 ports,
		// appended straight to the log in groups of 500.
		hosts := make([]*host, nHosts)
		var spanStart, spanEnd time.Time
		fillStart := time.Now()
		var wg sync.WaitGroup
		for i := range nHosts {
			hs := startHost(b, fmt.Sprintf("host-%03d", i), "nats://127.0.0.1:1", fleet.PublisherConfig{})
			hs.stop()
			hosts[i] = hs
			wg.Add(1)
			go func() {
				defer wg.Done()
				fill(b, hs.log, nEvents, i)
			}()
		}
		wg.Wait()
		spanEnd = time.Now()
		spanStart = fillStart
		pubStart := time.Now()
		for _, hs := range hosts {
			hs.start(b, url, fleet.PublisherConfig{})
		}
		for _, hs := range hosts {
			hs.waitCaughtUp(b, 10*time.Minute)
		}
		pubTime := time.Since(pubStart)
		total := float64(nHosts * nEvents)
		// The simulated hosts are done: their ledgers (100 files mapped in
		// this process, several GB at full scale) would otherwise compete
		// with the hub's store for the machine's memory, which real hosts
		// on their own machines do not.
		for _, hs := range hosts {
			hs.close(b)
		}
		debug.FreeOSMemory()
		r, _ := reader(b, url)
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(1, 2))
		moment := func() ulid.ULID {
			return ledger.UntilID(spanStart.Add(time.Duration(rng.Int64N(int64(spanEnd.Sub(spanStart))))))
		}
		measure := func(n int, f func()) (p50, p95 time.Duration) {
			ds := make([]time.Duration, n)
			for i := range ds {
				t := time.Now()
				f()
				ds[i] = time.Since(t)
			}
			slices.Sort(ds)
			return ds[n/2], ds[n*95/100]
		}
		_, statusP95 := measure(20, func() {
			if _, err := r.Status(ctx, ulid.ULID{}); err != nil {
				b.Fatal(err)
			}
		})
		_, statusAtP95 := measure(10, func() {
			if _, err := r.Status(ctx, moment()); err != nil {
				b.Fatal(err)
			}
		})
		whoP50, whoP95 := measure(200, func() {
			host := fmt.Sprintf("host-%03d", rng.IntN(nHosts))
			if _, err := r.Who(ctx, host, 8000+rng.IntN(100), moment()); err != nil {
				b.Fatal(err)
			}
		})
		rss := rssKB(b, hp.cmd.Process.Pid)
		store := dirBytes(b, filepath.Join(data, "jetstream"))
		b.ReportMetric(total, "events")
		b.ReportMetric(total/pubTime.Seconds(), "publish-events/s")
		b.ReportMetric(ms(statusP95), "status-now-p95-ms")
		b.ReportMetric(ms(statusAtP95), "status-at-p95-ms")
		b.ReportMetric(ms(whoP50), "who-at-p50-ms")
		b.ReportMetric(ms(whoP95), "who-at-p95-ms")
		b.ReportMetric(float64(rss-rssIdle)*1024/total, "hub-rss-B/event")
		b.ReportMetric(float64(rss)/1024, "hub-rss-MiB")
		b.ReportMetric(float64(store)/total, "hub-disk-B/event")
	}
}

// fill appends n events to log: allocations and releases over 100 ports.
func fill(tb testing.TB, log *ledger.Log, n, seed int) {
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	held := map[int]bool{}
	var batch []ledger.Event
	for i := 0; i < n; i++ {
		port := 8000 + rng.IntN(100)
		var e ledger.Event
		if held[port] {
			e = ledger.Event{Type: ledger.EventReleased, Port: port, Released: &ledger.Released{Reason: "done", ReleasedBy: "bench"}}
			delete(held, port)
		} else {
			e = ledger.Event{Type: ledger.EventAllocated, Port: port, Allocated: &ledger.Allocated{
				ServiceName: "svc-" + strconv.Itoa(rng.IntN(50)), StartedBy: "bench", Purpose: "fleet scale"}}
			held[port] = true
		}
		batch = append(batch, e)
		if len(batch) == 500 || i == n-1 {
			if _, err := log.Append(batch, nil); err != nil {
				tb.Error(err)
				return
			}
			batch = batch[:0]
			time.Sleep(time.Millisecond) // spread the moments a little
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// rssKB reads a process's resident set from /proc.
func rssKB(tb testing.TB, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// dirBytes sums the sizes of the files under dir.
func dirBytes(tb testing.TB, dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
