package ledger

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkChainCost prices the hash chain where it costs most: groups of
// 16 events appended as the writer commits them under 16 clients, with and
// without the chain, durable (fsync, as in production) and without fsync
// (the CPU alone). Compare events/s of chain and nochain in one run.
func BenchmarkChainCost(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, chain := range []bool{true, false} {
			name := fmt.Sprintf("durable=%v/chain=%v", sync, chain)
			b.Run(name, func(b *testing.B) {
				l, err := Open(filepath.Join(b.TempDir(), "ledger.db"), Options{NoSync: !sync})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				l.noChain = !chain
				batch := make([]Event, 16)
				for i := range batch {
					batch[i] = Event{Type: EventAllocated, Port: 8000 + i, Allocated: &Allocated{
						ServiceName: fmt.Sprintf("bench-%d", i), StartedBy: "bench", Purpose: "chain cost"}}
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := l.Append(batch, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// BenchmarkChainDiskPerEvent writes the same 100k allocate/release events
// (groups of 16) into two logs, with and without the chain, and reports
// the file's used bytes per event of each and their difference.
func BenchmarkChainDiskPerEvent(b *testing.B) {
	const events = 100_000
	used := map[bool]float64{}
	for b.Loop() {
		for _, chain := range []bool{true, false} {
			clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			l, err := Open(filepath.Join(b.TempDir(), "ledger.db"), Options{NoSync: true, Now: func() time.Time { return clock }})
			if err != nil {
				b.Fatal(err)
			}
			l.noChain = !chain
			batch := make([]Event, 16)
			for n := 0; n < events; n += len(batch) {
				clock = clock.Add(time.Second)
				for i := range batch {
					port := 8000 + (n+i)%101
					if (n/len(batch))%2 == 0 {
						batch[i] = Event{Type: EventAllocated, Port: port, Allocated: &Allocated{
							ServiceName: fmt.Sprintf("svc-%d", port), StartedBy: "ledger run", Purpose: "dev server"}}
					} else {
						batch[i] = Event{Type: EventReleased, Port: port, Released: &Released{Reason: "process exited", ReleasedBy: "watchdog", DurationMS: 61000}}
					}
				}
				if _, err := l.Append(batch, nil); err != nil {
					b.Fatal(err)
				}
			}
			size, err := l.Size()
			if err != nil {
				b.Fatal(err)
			}
			used[chain] = float64(size) / events
			l.Close()
		}
	}
	b.ReportMetric(used[true], "chain-bytes/event")
	b.ReportMetric(used[false], "nochain-bytes/event")
	b.ReportMetric(used[true]-used[false], "extra-bytes/event")
}

// BenchmarkChainLink is the chain's CPU per event: one link (a SHA-256 over
// the previous link, the position, the ID and the encoded event) and the
// value with its trailer, for a typical allocated event. Divided by an
// event's share of a durable commit it gives the chain's part of the
// append rate, without the noise of the disk.
func BenchmarkChainLink(b *testing.B) {
	e := Event{Type: EventAllocated, Port: 8000, Allocated: &Allocated{ServiceName: "grace_backend", StartedBy: "serve.py", Purpose: "Main Grace API server"}}
	body, err := AppendEncoded(nil, &e)
	if err != nil {
		b.Fatal(err)
	}
	var head ChainHead
	id := SinceID(time.Now())
	b.ReportAllocs()
	for b.Loop() {
		_, head = chainEvent(head, id, body)
	}
}
