// Command ledger-load drives allocate+release cycles over HTTP with N
// concurrent clients for a fixed time and prints the cycle rate and the
// latency percentiles. Without --addr it starts a real daemon stack in this
// process (bbolt with fsync, the command writer, the REST server on a
// loopback port) on a temporary data directory, so the figures include
// durability and the network stack.
//
//	go run ./cmd/ledger-load --clients 16 --duration 10s
//	go run ./cmd/ledger-load --clients 1 --duration 10s --op allocate
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/ledger"
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
	rng := fs.String("range", "48000-48999", "managed range of the in-process daemon")
	op := fs.String("op", "cycle", "what one operation is: cycle (allocate then release) or allocate (allocate only, each client releasing its port untimed)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file")
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
	if *clients < 1 || *duration <= 0 || (*op != "cycle" && *op != "allocate") {
		return errors.New("--clients must be >= 1, --duration > 0, --op cycle or allocate")
	}
	base := *addr
	if base == "" {
		r, err := ledger.ParseRange(*rng)
		if err != nil {
			return err
		}
		url, stop, err := startDaemon(r)
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
	start := time.Now()
	for i := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = drive(ctx, httpapi.NewClient(base, *token), fmt.Sprintf("load-%03d", i), *op)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

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

// startDaemon runs the daemon's parts in this process on a temp directory
// and returns the API's base URL.
func startDaemon(r ledger.Range) (string, func(), error) {
	dir, err := os.MkdirTemp("", "ledger-load-")
	if err != nil {
		return "", nil, err
	}
	log, err := ledger.Open(filepath.Join(dir, "ledger.db"), ledger.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	svc, err := commands.New(commands.Config{Log: log})
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
	srv := httpapi.NewHTTPServer(httpapi.NewServer(httpapi.Config{Service: svc, Events: svc}))
	go srv.Serve(ln)
	stop := func() {
		srv.Shutdown(context.Background())
		svc.Close()
		log.Close()
		os.RemoveAll(dir)
	}
	return "http://" + ln.Addr().String(), stop, nil
}
