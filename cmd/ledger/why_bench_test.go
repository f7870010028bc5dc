package main

import (
	"net"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"
)

// openSockets opens n sockets in this process (a third listeners, the rest
// connected pairs on loopback) and closes them when b ends: the "busy
// machine" that `ledger why` and lsof are measured on.
func openSockets(b *testing.B, n int) {
	b.Helper()
	var closers []interface{ Close() error }
	b.Cleanup(func() {
		for _, c := range closers {
			c.Close()
		}
	})
	hub, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	closers = append(closers, hub)
	opened := 1
	for opened < n/3 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		closers = append(closers, ln)
		opened++
	}
	for opened+2 <= n {
		c, err := net.Dial("tcp4", hub.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := hub.Accept()
		if err != nil {
			b.Fatal(err)
		}
		closers = append(closers, c, s)
		opened += 2
	}
}

// timeProcess runs the command made by mk b.N times and reports the p50
// and p95 of its wall time.
func timeProcess(b *testing.B, mk func() *exec.Cmd) {
	b.Helper()
	var d []time.Duration
	for b.Loop() {
		cmd := mk()
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
		d = append(d, time.Since(t0))
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(d[len(d)*95/100].Microseconds())/1000, "p95_ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkWhyProcess measures `ledger why PORT` as a whole process (the
// OS's view, the ledger file opened in this process, the verdict) with
// 1,000 sockets open on the machine, and `lsof -i :PORT` side by side in the
// same run as the anchor. Target: ledger why p50 <= 30 ms.
func BenchmarkWhyProcess(b *testing.B) {
	openSockets(b, 1000)
	data := b.TempDir()
	const port = 30725
	ledgerBin := bins.Ledger(b)
	startListener(b, "tcp4", "127.0.0.1:"+strconv.Itoa(port)) // bound before the first `why`
	mk := func(args ...string) func() *exec.Cmd {
		return func() *exec.Cmd {
			cmd := exec.Command(ledgerBin, args...)
			cmd.Env = append(cmd.Environ(), "LEDGER_DATA="+data, "LEDGER_RANGE=", "LEDGER_ADDR=")
			return cmd
		}
	}
	b.Run("ledger_why", func(b *testing.B) { timeProcess(b, mk("why", strconv.Itoa(port))) })
	// The harder case: the listener is older than a process that holds
	// 1,000 sockets, so a search by age would read that one first.
	listenchild := bins.Program(b, "./cmd/ledger/testdata/listenchild")
	startListenerAs(b, listenchild, "-net", "tcp4", "-addr", "127.0.0.1:0", "-extra", "1000")
	b.Run("ledger_why_older_listener", func(b *testing.B) { timeProcess(b, mk("why", strconv.Itoa(port))) })
	b.Run("ledger_version", func(b *testing.B) { timeProcess(b, mk("version")) })
	lsof, err := exec.LookPath("lsof")
	if err != nil {
		b.Log("lsof is not installed: no anchor")
		return
	}
	b.Run("lsof", func(b *testing.B) {
		timeProcess(b, func() *exec.Cmd { return exec.Command(lsof, "-i", ":"+strconv.Itoa(port)) })
	})
}
