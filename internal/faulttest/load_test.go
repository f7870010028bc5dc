package faulttest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSlowClients connects 200 clients that send their request headers one
// byte a second (slowloris) for about 12 seconds, reconnecting when the
// daemon cuts them off (its ReadHeaderTimeout is 5 s). Meanwhile another
// client keeps getting answers. Its latencies are logged, not asserted.
func TestSlowClients(t *testing.T) {
	t.Parallel() // its own daemon and data directory; only latencies are logged
	if testing.Short() {
		t.Skip("takes about 12 s")
	}
	data := t.TempDir()
	d := startDaemon(t, data)
	const slow = 200
	window := 12 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var connected, cutOff atomic.Int64
	var wg sync.WaitGroup
	for i := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", d.Addr)
				if err != nil {
					return
				}
				connected.Add(1)
				req := fmt.Sprintf("GET /api/ports/status HTTP/1.1\r\nHost: %s\r\nX-Slow-%d: %s", d.Addr, i, strings.Repeat("a", 64))
				for j := 0; j < len(req) && ctx.Err() == nil; j++ {
					if _, err := conn.Write([]byte{req[j]}); err != nil {
						cutOff.Add(1)
						break
					}
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
				conn.Close()
			}
		}()
	}
	time.Sleep(2 * time.Second) // let the slow clients connect

	client := &http.Client{Timeout: 30 * time.Second}
	var lat []time.Duration
	for i := 0; ctx.Err() == nil && i < 50; i++ {
		start := time.Now()
		resp, err := client.Get(d.url("/api/ports/status"))
		if err != nil {
			t.Fatalf("a normal client got no answer while slow clients were connected: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status: %d", resp.StatusCode)
		}
		status, b := allocateHTTP(t, d, fmt.Sprintf("normal%d", i))
		if status != http.StatusCreated {
			t.Fatalf("allocate while slow clients were connected: %d %s", status, b)
		}
		lat = append(lat, time.Since(start))
		time.Sleep(150 * time.Millisecond)
	}
	wg.Wait()
	slices.Sort(lat)
	t.Logf("%d slow connections (%d cut off by the daemon); a normal client's status+allocate: %d answered, p50 %v, max %v",
		connected.Load(), cutOff.Load(), len(lat), lat[len(lat)/2], lat[len(lat)-1])
	if len(lat) < 10 {
		t.Fatalf("only %d answers in the window", len(lat))
	}
}

// TestThousandSubscribers runs allocate and release over HTTP with 1,000
// live SSE connections and checks that every subscriber receives every
// event while the writes go on. It logs the allocate p50 with and without
// the subscribers (the target is within 2x) but asserts no timing: a timed
// assertion fails on a loaded machine, not on a slow daemon.
func TestThousandSubscribers(t *testing.T) {
	t.Parallel() // its own daemon and data directory; only latencies are logged
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	data := t.TempDir()
	d := startDaemon(t, data)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	measure := func(n int) time.Duration {
		var lat []time.Duration
		for i := range n {
			start := time.Now()
			req, _ := http.NewRequest("POST", d.url("/api/ports/allocations"), strings.NewReader(fmt.Sprintf(`{"service_name":"lat%d"}`, i)))
			resp, err := client.Do(d.authorize(req))
			if err != nil {
				t.Fatal(err)
			}
			var a allocation
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("allocate: %d %s", resp.StatusCode, b)
			}
			lat = append(lat, time.Since(start))
			_ = jsonUnmarshal(b, &a)
			req, _ = http.NewRequest("DELETE", d.url(fmt.Sprintf("/api/ports/allocations/%d", a.Port)), nil)
			if resp, err = client.Do(d.authorize(req)); err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		slices.Sort(lat)
		return lat[len(lat)/2]
	}
	measure(20) // warm up
	base := measure(200)

	const subs = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lines atomic.Int64
	var opened sync.WaitGroup
	var done sync.WaitGroup
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: subs}
	sse := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	for range subs {
		opened.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", d.url("/api/ports/events"), nil)
			resp, err := sse.Do(d.authorize(req))
			if err != nil {
				opened.Done()
				t.Errorf("subscribe: %v", err)
				return
			}
			defer resp.Body.Close()
			opened.Done()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "id: ") {
					lines.Add(1)
				}
			}
		}()
	}
	opened.Wait()
	withSubs := measure(200)
	// Every subscriber gets all 400 events of the measurement.
	waitFor(t, "every subscriber received every event", func() bool { return lines.Load() >= subs*400 })
	cancel()
	done.Wait()
	t.Logf("allocate p50 over HTTP: %v with no subscriber, %v with %d subscribers (%.2fx); %d events delivered",
		base, withSubs, subs, float64(withSubs)/float64(base), lines.Load())
	// The ratio is reported, not asserted: on a loaded machine (CI runs
	// packages side by side) it says more about the machine than about the
	// daemon. BenchmarkAllocateWithSubscribers in commands measures it.
}
