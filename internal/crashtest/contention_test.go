package crashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/ledger"
)

const (
	contenders   = 50
	preAllocated = contenders / 5 // ports that the release processes free
	processLimit = 10 * time.Second
)

// contender is one CLI process of TestContention.
type contender struct {
	kind   string // allocate, release or run
	name   string
	args   []string
	pre    ledger.Allocation // the allocation a release process frees
	socket bool              // the daemon's socket existed when the process started

	start, end     time.Time
	code           int
	killed         bool // by the test's time limit
	stdout, stderr string
}

// TestContention runs 50 CLI processes on one data directory: a mix of
// `ledger allocate`, `ledger release` and `ledger run -- true`. The first
// half start at once while a daemon serves the directory; when half of them
// have finished the daemon is sent SIGTERM, and as soon as its socket is
// gone the second half start at once, so that the first go through the
// daemon, the second open the file themselves (waiting for the stopping
// daemon to let go of it), and some straddle the stop. No process may hang; each
// succeeds or fails with a `ledger: ...` message; and the log keeps every
// promise that checkLog checks. CRASHTEST_ROUNDS repeats it on fresh data
// directories.
func TestContention(t *testing.T) {
	n := 1
	if os.Getenv("CRASHTEST_ROUNDS") != "" {
		n = rounds(t)
	}
	for r := range n {
		t.Run(fmt.Sprintf("round%02d", r), contentionRound)
	}
}

func contentionRound(t *testing.T) {
	data := t.TempDir()
	layout := ledger.Layout{Dir: data}
	sock := httpapi.NewSocketClient(layout.Socket(), "")
	d := startDaemon(t, data, "")

	in := newIntent()
	in.owns = func(by, service string) bool {
		if by == "ledger run" {
			return strings.HasPrefix(service, "run")
		}
		return strings.HasPrefix(by, "rel") && service == "pre"+strings.TrimPrefix(by, "rel")
	}
	ctx := context.Background()
	pre := make([]ledger.Allocation, preAllocated)
	for i := range pre {
		name := fmt.Sprintf("pre%02d", i)
		in.sentAllocate(name)
		a, err := sock.Allocate(ctx, ledger.AllocateRequest{ServiceName: name, StartedBy: "crashtest"})
		if err != nil {
			t.Fatalf("allocate %s: %v", name, err)
		}
		in.allocated(a)
		pre[i] = a
	}

	procs := make([]*contender, contenders)
	for i := range procs {
		c := &contender{}
		switch i % 5 {
		case 0, 1:
			c.kind, c.name = "allocate", fmt.Sprintf("alloc%02d", i)
			c.args = []string{"allocate", "--service", c.name, "--started-by", "crashtest", "--json"}
			in.sentAllocate(c.name)
		case 2:
			k := i / 5
			c.kind, c.name, c.pre = "release", fmt.Sprintf("rel%02d", k), pre[k]
			c.args = []string{"release", strconv.Itoa(c.pre.Port), "--released-by", c.name, "--json"}
			in.sentRelease(c.name)
		default:
			c.kind, c.name = "run", fmt.Sprintf("run%02d", i)
			c.args = []string{"run", "--quiet", "--service", c.name, "--", "true"}
			in.sentAllocate(c.name)
			in.sentRelease("ledger run")
		}
		procs[i] = c
	}

	var wg sync.WaitGroup
	var finished atomic.Int64
	launch := func(group []*contender) {
		for _, c := range group {
			_, err := os.Stat(layout.Socket())
			c.socket = err == nil
			wg.Add(1)
			go func() { defer wg.Done(); c.run(data); finished.Add(1) }()
		}
	}
	launch(procs[:contenders/2])
	deadline := time.Now().Add(4 * processLimit)
	for finished.Load() < contenders/4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	sigAt := time.Now()
	d.Signal(t, syscall.SIGTERM)
	stopped := make(chan struct{})
	var exitAt time.Time
	go func() {
		defer close(stopped)
		<-d.Done()
		exitAt = time.Now()
	}()
	// The daemon removes its socket when it stops accepting; it holds the
	// file a little longer, so the second half queue on the file's lock.
	for time.Now().Before(deadline) {
		if _, err := os.Stat(layout.Socket()); errors.Is(err, os.ErrNotExist) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	launch(procs[contenders/2:])
	wg.Wait()
	exitCode, exitSig := d.Wait(t)
	<-stopped
	if exitCode != 0 {
		t.Errorf("the daemon exited %d (signal %v) after SIGTERM, want 0\n%s", exitCode, exitSig, d.Stderr)
	}
	if _, err := os.Stat(layout.Socket()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is still there after a clean stop (%v)", err)
	}

	// Every process ended in time, with success or a clear message.
	modes := map[string]int{}
	results := map[string]int{}
	failures := map[string]int{}
	var runsReleased []string // run processes that said nothing: their port is free again
	for _, c := range procs {
		label := fmt.Sprintf("%s %s (%s)", c.kind, c.name, strings.Join(c.args, " "))
		if c.killed {
			t.Errorf("HANG: %s did not finish within %s; stderr:\n%s", label, processLimit, c.stderr)
			continue
		}
		if c.code != 0 {
			results[c.kind+" failed"]++
			if !hasLedgerLine(c.stderr) {
				t.Errorf("%s exited %d without a 'ledger: ...' message; stderr:\n%s", label, c.code, c.stderr)
			}
			failures[firstLine(c.stderr)]++
			continue
		}
		results[c.kind+" ok"]++
		switch {
		case c.end.Before(exitAt):
			modes["through the daemon (finished while it held the file)"]++
		case !c.socket:
			modes["embedded (started after the socket was gone)"]++
		default:
			modes["straddling the stop"]++
		}
		switch c.kind {
		case "allocate":
			var a ledger.Allocation
			if err := json.Unmarshal([]byte(c.stdout), &a); err != nil {
				t.Errorf("%s: stdout is not an allocation: %v\n%s", label, err, c.stdout)
				continue
			}
			in.allocated(a)
		case "release":
			var e ledger.Event
			if err := json.Unmarshal([]byte(c.stdout), &e); err != nil {
				t.Errorf("%s: stdout is not an event: %v\n%s", label, err, c.stdout)
				continue
			}
			in.released(e, c.pre.EventID)
		case "run":
			if strings.TrimSpace(c.stderr) == "" {
				runsReleased = append(runsReleased, c.name)
			}
		}
	}

	facts := checkLog(t, data, in)
	replayVerify(t, data)

	// The state at the end: the acknowledged allocations are live, the runs
	// that reported nothing have given their ports back.
	in.mu.Lock()
	for _, a := range in.allocAcked {
		if in.settled[a.EventID] {
			continue
		}
		if h := facts.final.Allocs[a.Port]; h == nil || h.EventID != a.EventID {
			t.Errorf("allocation %s of port %d to %s is not live at the end", a.EventID, a.Port, a.ServiceName)
		}
	}
	in.mu.Unlock()
	for _, name := range runsReleased {
		for port, a := range facts.final.Allocs {
			if a.ServiceName == name {
				t.Errorf("%s exited 0 without a word, but port %d is still held by it", name, port)
			}
		}
	}

	t.Logf("SIGTERM %s after the first launch, %d processes finished by then; the daemon exited %s after SIGTERM; the last process ended %s after it",
		sigAt.Sub(procs[0].start).Round(time.Millisecond), finishedBy(procs, sigAt), exitAt.Sub(sigAt).Round(time.Millisecond), lastEnd(procs).Sub(exitAt).Round(time.Millisecond))
	t.Logf("processes: %s", outcomeLine(results))
	t.Logf("successful processes by mode: %s", outcomeLine(modes))
	if len(failures) > 0 {
		t.Logf("failures: %s", outcomeLine(failures))
	}
	t.Logf("log: %d events (%d allocated, %d released), %d ports held at the end", len(facts.events), facts.allocated, facts.released, len(facts.final.Allocs))
	if modes["through the daemon (finished while it held the file)"] == 0 || modes["embedded (started after the socket was gone)"] == 0 {
		t.Errorf("both modes must happen on the data directory; got %s", outcomeLine(modes))
	}
}

// run runs the process with the time limit and records what happened.
func (c *contender) run(data string) {
	ctx, cancel := context.WithTimeout(context.Background(), processLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, ledgerBin, c.args...)
	cmd.Env = ledgerEnv(data)
	cmd.WaitDelay = time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	c.start = time.Now()
	err := cmd.Run()
	c.end = time.Now()
	c.killed = ctx.Err() != nil
	c.stdout, c.stderr = out.String(), errb.String()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		c.code = ee.ExitCode()
	default:
		c.code = -1
		c.stderr += "\n(test: " + err.Error() + ")"
	}
}

// hasLedgerLine reports whether stderr holds a `ledger: ...` line.
func hasLedgerLine(stderr string) bool {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "ledger: ") {
			return true
		}
	}
	return false
}

// firstLine returns the first line of s, with port numbers and IDs as they
// are: failures are few and each is worth reading.
func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func finishedBy(procs []*contender, at time.Time) int {
	n := 0
	for _, c := range procs {
		if c.end.Before(at) {
			n++
		}
	}
	return n
}

func lastEnd(procs []*contender) time.Time {
	ends := make([]time.Time, 0, len(procs))
	for _, c := range procs {
		ends = append(ends, c.end)
	}
	sort.Slice(ends, func(i, j int) bool { return ends[i].Before(ends[j]) })
	return ends[len(ends)-1]
}
