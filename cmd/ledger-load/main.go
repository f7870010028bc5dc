// Command ledger-load drives allocate+release cycles over HTTP with N
// concurrent clients for a fixed time and prints the cycle rate and the
// latency percentiles. Without --addr it starts a real daemon stack in this
// process (bbolt with fsync, the command writer, the REST server on a
// loopback port) on a temporary data directory, so the figures include
// durability and the network stack.
//
//	go run ./cmd/ledger-load --clients 16 --duration 10s
//	go run ./cmd/ledger-load --clients 1 --duration 10s --op allocate
//	go run ./cmd/ledger-load --op etcd-put --addr 127.0.0.1:2379   # the anchor: durable etcd puts
//	go run ./cmd/ledger-load --clients 16 --scrape 1s              # with a Prometheus scrape of /metrics every second
//	go run ./cmd/ledger-load --clients 1 --op ping                 # the HTTP floor: GET /healthz, no work behind it
//
// With --pid it reads that process's CPU time from /proc before and after the
// run and prints the server's CPU per write (a cycle is two writes).
// internal/perf/vs-etcd.sh runs the daemon and etcd side by side.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/ledger"
	bolt "go.etcd.io/bbolt"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "ledger-load: %v\n", err)
		os.Exit(1)
	}
}

type result struct {
	ops       int
	latencies []time.Duration // one per operation measured
	errs      int
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ledger-load", flag.ContinueOnError)
	clients := fs.Int("clients", 16, "concurrent clients")
	duration := fs.Duration("duration", 10*time.Second, "how long to run")
	addr := fs.String("addr", "", "an existing daemon's address (default: start one in this process on a temp dir)")
	token := fs.String("token", "", "bearer token for --addr")
	rng := fs.String("range", "19000-19999", "managed range of the in-process daemon")
	op := fs.String("op", "cycle", "what one operation is: cycle (allocate then release), allocate (allocate only, each client releasing its port untimed), etcd-put (one durable put to the etcd at --addr, the anchor), bbolt-update (one bare bbolt Update of a fresh file in --dir, the disk's anchor), or ping (one GET /healthz: the HTTP round trip with nothing behind it, the floor under any write over HTTP)")
	dir := fs.String("dir", "", "where --op bbolt-update puts its file (default: the temp dir), on the disk to measure")
	pid := fs.Int("pid", 0, "the server's process ID: report its CPU time per write (Linux)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	scrape := fs.Duration("scrape", 0, "also GET /metrics at this interval during the run, as Prometheus would, and print the scrapes' latency (0: no scrape)")
	noChain := registerChainFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *clients < 1 || *duration <= 0 || !slices.Contains([]string{"cycle", "allocate", "etcd-put", "bbolt-update", "ping"}, *op) {
		return errors.New("--clients must be >= 1, --duration > 0, --op cycle, allocate, etcd-put, bbolt-update or ping")
	}
	var anchorDB *bolt.DB
	if *op == "bbolt-update" {
		d, err := os.MkdirTemp(*dir, "ledger-load-bbolt-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		if anchorDB, err = bolt.Open(filepath.Join(d, "anchor.db"), 0o600, nil); err != nil {
			return err
		}
		defer anchorDB.Close()
		*addr = "bbolt" // no daemon to start
	}
	if *op == "etcd-put" && *addr == "" {
		return errors.New("--op etcd-put needs --addr, the etcd client URL")
	}
	base := *addr
	if base == "" {
		r, err := ledger.ParseRange(*rng)
		if err != nil {
			return err
		}
		// Writes over TCP need a token: the in-process daemon gets one.
		*token = loadToken
		url, stop, err := startDaemon(r, *noChain)
		if err != nil {
			return err
		}
		defer stop()
		base = url
	} else if !strings.Contains(base, "://") {
		base = "http://" + base
	}

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	results := make([]result, *clients)
	var wg sync.WaitGroup
	cpu0, err := procCPU(*pid)
	if err != nil {
		return err
	}
	var scrapes []time.Duration
	scraped := make(chan struct{})
	if *scrape > 0 {
		go func() {
			defer close(scraped)
			scrapes = scrapeMetrics(ctx, base, *token, *scrape)
		}()
	} else {
		close(scraped)
	}
	start := time.Now()
	for i := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch *op {
			case "etcd-put":
				results[i] = driveEtcd(ctx, base, i)
				return
			case "bbolt-update":
				results[i] = driveBolt(ctx, anchorDB, i)
				return
			}
			results[i] = drive(ctx, httpapi.NewClient(base, *token), fmt.Sprintf("load-%03d", i), *op)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	<-scraped
	cpu1, err := procCPU(*pid)
	if err != nil {
		return err
	}

	var all []time.Duration
	ops, errs := 0, 0
	for _, r := range results {
		ops += r.ops
		errs += r.errs
		all = append(all, r.latencies...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))]
	}
	fmt.Fprintf(out, "clients=%d op=%s duration=%s cores=%d\n", *clients, *op, elapsed.Round(time.Millisecond), runtime.NumCPU())
	fmt.Fprintf(out, "ops=%d errors=%d rate=%.0f ops/s\n", ops, errs, float64(ops)/elapsed.Seconds())
	fmt.Fprintf(out, "latency p50=%s p90=%s p99=%s max=%s\n", pct(0.50), pct(0.90), pct(0.99), pct(1))
	if *scrape > 0 {
		slices.Sort(scrapes)
		sp := func(p float64) time.Duration {
			if len(scrapes) == 0 {
				return 0
			}
			return scrapes[min(len(scrapes)-1, int(float64(len(scrapes))*p))]
		}
		fmt.Fprintf(out, "scrapes=%d every %s: p50=%s p95=%s max=%s\n", len(scrapes), *scrape, sp(0.50), sp(0.95), sp(1))
	}
	if *pid != 0 && ops > 0 {
		writes, per := ops, "write"
		switch *op {
		case "cycle", "allocate":
			writes = 2 * ops // an allocate and a release
		case "ping":
			per = "request" // nothing is written
		}
		fmt.Fprintf(out, "server cpu=%s per %s=%s\n", cpu1-cpu0, per, ((cpu1 - cpu0) / time.Duration(writes)).Round(100*time.Nanosecond))
	}
	if errs > 0 {
		return fmt.Errorf("%d operations failed", errs)
	}
	return nil
}

// drive runs operations until ctx ends.
func drive(ctx context.Context, c *httpapi.Client, service, op string) result {
	var r result
	bg := context.Background() // an operation started is finished, so no port is left held
	for ctx.Err() == nil {
		t0 := time.Now()
		if op == "ping" {
			if _, err := c.DaemonPID(bg); err != nil {
				r.errs++
				continue
			}
			r.latencies = append(r.latencies, time.Since(t0))
			r.ops++
			continue
		}
		a, err := c.Allocate(bg, ledger.AllocateRequest{ServiceName: service, StartedBy: "ledger-load"})
		if err != nil {
			r.errs++
			continue
		}
		if op == "allocate" {
			r.latencies = append(r.latencies, time.Since(t0))
		}
		_, err = c.Release(bg, ledger.ReleaseRequest{Port: a.Port, Reason: "load"})
		if err != nil {
			r.errs++
			continue
		}
		if op == "cycle" {
			r.latencies = append(r.latencies, time.Since(t0))
		}
		r.ops++
	}
	return r
}

// loadToken is the in-process daemon's token: writes over TCP need one.
const loadToken = "ledger-load"

// startDaemon runs the daemon's parts in this process on a temp directory
// and returns the API's base URL.
func startDaemon(r ledger.Range, noChain bool) (string, func(), error) {
	dir, err := os.MkdirTemp("", "ledger-load-")
	if err != nil {
		return "", nil, err
	}
	log, err := ledger.Open(filepath.Join(dir, "ledger.db"), ledger.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	if noChain {
		disableChain(log)
	}
	// The metrics are wired as `ledger serve` wires them, so that the
	// figures include their cost.
	metrics := httpapi.NewMetrics(httpapi.MetricsConfig{Version: "ledger-load", LogSize: log.Size})
	svc, err := commands.New(commands.Config{Log: log, Observer: metrics})
	if err != nil {
		log.Close()
		os.RemoveAll(dir)
		return "", nil, err
	}
	if err := svc.SetRange(context.Background(), r); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := httpapi.NewHTTPServer(httpapi.NewServer(httpapi.Config{Service: svc, Events: svc, Metrics: metrics, Token: loadToken}))
	go srv.Serve(ln)
	stop := func() {
		srv.Shutdown(context.Background())
		svc.Close()
		log.Close()
		os.RemoveAll(dir)
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// scrapeMetrics fetches base/metrics every interval until ctx ends and
// returns how long each scrape took, body read in full.
func scrapeMetrics(ctx context.Context, base, token string, every time.Duration) []time.Duration {
	var out []time.Duration
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
		req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		if err != nil {
			return out
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			out = append(out, time.Since(t0))
		}
	}
}

// driveEtcd puts keys into etcd through its JSON gateway until ctx ends: the
// anchor the daemon's write rate is compared with. Each put is one durable
// write (etcd fsyncs its WAL before it answers).
func driveEtcd(ctx context.Context, base string, client int) result {
	var r result
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for i := 0; ctx.Err() == nil; i++ {
		key := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "load/%03d/%d", client, i%101))
		val := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, `{"service_name":"load-%03d","started_by":"ledger-load"}`, client))
		body := `{"key":"` + key + `","value":"` + val + `"}`
		t0 := time.Now()
		resp, err := hc.Post(base+"/v3/kv/put", "application/json", strings.NewReader(body))
		if err != nil {
			r.errs++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			r.errs++
			continue
		}
		r.latencies = append(r.latencies, time.Since(t0))
		r.ops++
	}
	return r
}

// driveBolt commits one small put per bbolt Update until ctx ends: what one
// durable write costs on this disk, with nothing else around it.
func driveBolt(ctx context.Context, db *bolt.DB, client int) result {
	var r result
	val := []byte(`{"service_name":"load","started_by":"ledger-load"}`)
	for i := 0; ctx.Err() == nil; i++ {
		t0 := time.Now()
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("anchor"))
			if err != nil {
				return err
			}
			return b.Put(fmt.Appendf(nil, "%03d/%012d", client, i), val)
		})
		if err != nil {
			r.errs++
			continue
		}
		r.latencies = append(r.latencies, time.Since(t0))
		r.ops++
	}
	return r
}

// procCPU returns the user+system CPU time of a process from /proc/PID/stat;
// zero for pid 0.
func procCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("--pid: %w", err)
	}
	// Fields after the command (which may hold spaces) start after ")".
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("--pid: short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("--pid: bad /proc/%d/stat", pid)
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz, nil
}
