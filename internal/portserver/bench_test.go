package portserver_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portledger/portledger/internal/portserver"
	"github.com/portledger/portledger/ledger"
)

// benchClients is the number of protocol clients asking at once.
const benchClients = 16

// benchPool is how many ports each server hands out before the benchmark
// frees them (untimed) and goes on: both servers keep a port while the
// asking process lives.
const benchPool = 2000

// BenchmarkPortserver16 measures ports handed out per second to 16
// concurrent clients of the portserver protocol: the ledger (every answer
// an allocation committed to the bbolt file, free on TCP and UDP) against
// Google's portserver from Debian's python3-portpicker (an in-memory pool,
// also checked on TCP and UDP), on this machine in the same run. Each
// client is a goroutine of this process that connects, sends a live PID and
// reads the answer, as portpicker does.
//
//	go test ./internal/portserver -run '^$' -bench Portserver16 -benchtime 4000x
func BenchmarkPortserver16(b *testing.B) {
	b.Run("ledger", func(b *testing.B) {
		f := startRange(b, portserver.Config{}, ledger.Range{Lo: 25000, Hi: 25000 + benchPool - 1})
		free := func() {
			st, err := f.svc.Status(context.Background(), ledger.Allocation{}.EventID)
			if err != nil {
				b.Fatal(err)
			}
			for _, a := range st.PortManager.Allocations {
				if _, err := f.svc.Release(context.Background(), ledger.ReleaseRequest{Port: a.Port, Reason: "benchmark round"}); err != nil {
					b.Fatal(err)
				}
			}
		}
		benchProtocol(b, f.addr, free)
	})
	b.Run("google-portserver", func(b *testing.B) {
		if _, err := os.Stat("/usr/bin/portserver"); err != nil {
			b.Fatalf("Google's portserver is missing: apt-get install python3-portpicker (%v)", err)
		}
		addr := fmt.Sprintf("@ledger-bench-portserver-%d", os.Getpid())
		cmd := exec.Command("/usr/bin/python3", "/usr/bin/portserver",
			"--portserver_address", addr,
			"--portserver_static_pool", fmt.Sprintf("%d-%d", 27000, 27000+benchPool-1))
		cmd.Stderr = io.Discard // it logs every request at INFO
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGINT); _ = cmd.Wait() })
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.Dial("unix", addr)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("Google's portserver did not start: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Google's portserver takes a port back once its process is gone,
		// checked when it looks for a port: a new client process is all
		// a round needs.
		benchProtocol(b, addr, func() {})
	})
}

// benchProtocol runs b.N requests from benchClients goroutines against addr,
// in rounds of at most benchPool; between rounds (untimed) the client
// process is replaced and free gives the ports back.
func benchProtocol(b *testing.B, addr string, free func()) {
	var answered, empty atomic.Int64
	left := b.N
	b.ResetTimer()
	for left > 0 {
		b.StopTimer()
		pid := startClient(b)
		round := min(left, benchPool/2) // half the pool: a port some other socket of the machine holds never makes a round run dry
		left -= round
		var next atomic.Int64
		var wg sync.WaitGroup
		b.StartTimer()
		for range benchClients {
			wg.Go(func() {
				req := []byte(strconv.Itoa(pid) + "\n")
				for next.Add(1) <= int64(round) {
					if askRaw(addr, req) {
						answered.Add(1)
					} else {
						empty.Add(1)
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		stopClient(pid)
		free()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(answered.Load())/b.Elapsed().Seconds(), "ports/s")
	b.ReportMetric(0, "ns/op")
	if empty.Load() > 0 {
		b.Logf("%d of %d requests got no port", empty.Load(), b.N)
	}
}

// askRaw sends one request and says whether a port came back.
func askRaw(addr string, req []byte) bool {
	c, err := net.Dial("unix", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return false
	}
	var buf [16]byte
	n, _ := io.ReadFull(c, buf[:])
	_, err = strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	return n > 0 && err == nil
}

var clients sync.Map // pid -> *exec.Cmd

// startClient starts the process whose PID the clients send.
func startClient(b *testing.B) int {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	clients.Store(cmd.Process.Pid, cmd)
	b.Cleanup(func() { stopClient(cmd.Process.Pid) })
	return cmd.Process.Pid
}

func stopClient(pid int) {
	if v, ok := clients.LoadAndDelete(pid); ok {
		cmd := v.(*exec.Cmd)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}
