package portserver_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/internal/portserver"
	"github.com/portledger/portledger/ledger"
)

// testRange keeps these tests' ports away from the other packages' tests.
var testRange = ledger.Range{Lo: 31200, Hi: 31299}

// fixture is a real ledger on a bbolt file and a portserver on a socket path.
type fixture struct {
	svc  *commands.Ledger
	log  *ledger.Log
	srv  *portserver.Server
	addr string
	logs *syncBuffer
}

// start opens a ledger on testRange in a temp dir and serves cfg (Ledger
// and Logger filled in) on a socket path there.
func start(t testing.TB, cfg portserver.Config) *fixture {
	t.Helper()
	return startRange(t, cfg, testRange)
}

// startRange is start with another managed range.
func startRange(t testing.TB, cfg portserver.Config, rng ledger.Range) *fixture {
	t.Helper()
	dir := t.TempDir()
	log, err := ledger.Open(filepath.Join(dir, "ledger.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := commands.New(commands.Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SetRange(context.Background(), rng); err != nil {
		t.Fatal(err)
	}
	f := &fixture{svc: svc, log: log, addr: filepath.Join(dir, "ps.sock"), logs: &syncBuffer{}}
	cfg.Ledger = svc
	cfg.Logger = slog.New(slog.NewTextHandler(f.logs, nil))
	if f.srv, err = portserver.New(cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := portserver.Listen(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := f.srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		svc.Close()
		if err := log.Check(); err != nil {
			t.Errorf("check: %v", err)
		}
		log.Close()
	})
	return f
}

// ask sends one raw request and returns everything the server wrote before
// it closed the connection.
func (f *fixture) ask(t *testing.T, request string) string {
	t.Helper()
	c, err := net.Dial("unix", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if request != "" {
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("read answer: %v", err)
	}
	return string(b)
}

// isReset: the server may close a connection with unread input, which
// resets it; that is "nothing written" too.
func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// events returns the number of events in the log.
func (f *fixture) events(t *testing.T) uint64 {
	t.Helper()
	n, err := f.log.Count()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sleeper starts a real process that lives until the test ends: a client
// PID that exists.
func sleeper(t testing.TB) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

func TestAnswerIsAnAllocationOfTheClient(t *testing.T) {
	is := is.New(t)
	f := start(t, portserver.Config{Service: "unit-tests"})
	pid := sleeper(t)
	answer := f.ask(t, strconv.Itoa(pid)+"\n")
	is.True(strings.HasSuffix(answer, "\n")) // a port and a newline
	port, err := strconv.Atoi(strings.TrimSuffix(answer, "\n"))
	is.NoErr(err) // the answer is a number

	a, err := f.svc.Allocation(context.Background(), port, ledger.Allocation{}.EventID)
	is.NoErr(err)                                       // the port is allocated
	is.Equal(a.ServiceName, "unit-tests")               // to the configured service
	is.Equal(a.PID, pid)                                // held by the asking process
	is.True(a.PIDStartedAt != nil)                      // with its start time
	is.True(strings.Contains(a.StartedBy, "sleep 60"))  // started_by is its command line
	is.Equal(time.Duration(a.Lease), commands.MaxLease) // held while the process lives, listening or not, up to the longest lease
	is.Equal(f.srv.Stats().Answered, uint64(1))

	again := f.ask(t, strconv.Itoa(pid)+"\n")
	is.True(again != answer) // a pid that asks again gets another port
}

func TestBadRequestsGetNothing(t *testing.T) {
	f := start(t, portserver.Config{ReadTimeout: 300 * time.Millisecond})
	live := sleeper(t)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		request string
	}{
		{"garbage", "hello\n"},
		{"negative pid", "-5\n"},
		{"plus sign", "+" + strconv.Itoa(live) + "\n"},
		{"spaces", " " + strconv.Itoa(live) + " \n"},
		{"pid of 10 digits", "4294967297\n"},
		{"pid of 11 digits", "12345678901\n"},
		{"pid 0", "0\n"},
		{"pid 1 (init)", "1\n"},
		{"the daemon's own pid", strconv.Itoa(os.Getpid()) + "\n"},
		{"pid of an exited process", strconv.Itoa(gone.Process.Pid) + "\n"},
		{"empty line", "\n"},
		{"no newline, then close", strconv.Itoa(live)},
		{"endless line", strings.Repeat("1", 4096)},
		{"line of 33 bytes", strings.Repeat("0", 32) + "1\n"},
		{"silent client", ""},
		{"binary", "\x00\xff\x01\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			before := f.events(t)
			is.Equal(f.ask(t, tc.request), "") // nothing written
			is.Equal(f.events(t), before)      // nothing allocated
		})
	}
	is := is.New(t)
	st := f.srv.Stats()
	is.Equal(st.Answered, uint64(0))
	is.Equal(st.Malformed+st.Refused, uint64(len(tests)))                                 // each counted as dropped or refused
	is.True(strings.Contains(f.logs.String(), "no request line within the read timeout")) // the silent client is logged
	// The listener still serves.
	_, err := strconv.Atoi(strings.TrimSpace(f.ask(t, strconv.Itoa(live)+"\n")))
	is.NoErr(err) // a good request after the bad ones gets a port
}

func TestSilentClientsDoNotHoldOthersUp(t *testing.T) {
	is := is.New(t)
	f := start(t, portserver.Config{}) // the default read timeout: 1 s
	var silent []net.Conn
	for range 20 {
		c, err := net.Dial("unix", f.addr)
		is.NoErr(err) // connect and say nothing
		silent = append(silent, c)
	}
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	pid := sleeper(t)
	began := time.Now()
	answer := f.ask(t, strconv.Itoa(pid)+"\n")
	_, err := strconv.Atoi(strings.TrimSpace(answer))
	is.NoErr(err) // answered while 20 clients hang
	t.Logf("answered in %s with 20 silent clients connected", time.Since(began))

	// The silent ones are dropped after the read timeout, without a word.
	for _, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		is.NoErr(err)       // closed by the server, not by our deadline
		is.Equal(len(b), 0) // nothing written
	}
	is.True(time.Since(began) >= portserver.DefaultReadTimeout-100*time.Millisecond) // not before the timeout
}

func TestConcurrentClientsGetDistinctPorts(t *testing.T) {
	is := is.New(t)
	f := start(t, portserver.Config{})
	pid := sleeper(t)
	const n = 50
	ports := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ports[i] = f.ask(t, strconv.Itoa(pid)+"\n") })
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, p := range ports {
		is.True(p != "")  // every client answered
		is.True(!seen[p]) // with a port of its own
		seen[p] = true
	}
}

func TestExhaustedAnswersNothingAndSaysWhy(t *testing.T) {
	is := is.New(t)
	part := ledger.Range{Lo: testRange.Hi - 1, Hi: testRange.Hi}
	f := start(t, portserver.Config{Within: part})
	pid := sleeper(t)
	// Each port of the part is handed out once (one may be taken by some
	// other socket of the machine: the range lies among the ephemeral
	// ports), then the part is full.
	answered := 0
	for range part.Size() {
		answer := strings.TrimSpace(f.ask(t, strconv.Itoa(pid)+"\n"))
		if answer == "" {
			break
		}
		port, err := strconv.Atoi(answer)
		is.NoErr(err)                // answered with a port
		is.True(part.Contains(port)) // from the portserver's part
		answered++
	}
	before := f.events(t)
	is.Equal(f.ask(t, strconv.Itoa(pid)+"\n"), "")                               // the part is full: nothing
	is.Equal(f.events(t), before)                                                // nothing written
	is.Equal(f.srv.Stats().Answered, uint64(answered))                           // what was answered is counted
	is.True(f.srv.Stats().Exhausted >= 1)                                        // and the refusal too
	is.True(strings.Contains(f.logs.String(), "no free port in "+part.String())) // logged with the diagnosis
}

func TestListen(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()

	// A socket file left by a server that is gone is replaced.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	is.NoErr(err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln, err = portserver.Listen(stale)
	is.NoErr(err) // stale socket replaced
	fi, err := os.Stat(stale)
	is.NoErr(err)
	is.Equal(fi.Mode().Perm(), os.FileMode(0o600)) // only the owner reaches it

	// One that answers is not.
	_, err = portserver.Listen(stale)
	is.True(err != nil && strings.Contains(err.Error(), "another server answers")) // a live socket is kept
	ln.Close()

	// Nor is a file that is not a socket.
	file := filepath.Join(dir, "file")
	is.NoErr(os.WriteFile(file, []byte("data"), 0o600))
	_, err = portserver.Listen(file)
	is.True(err != nil && strings.Contains(err.Error(), "not a socket")) // a regular file is refused
	b, _ := os.ReadFile(file)
	is.Equal(string(b), "data") // and left alone

	for _, bad := range []string{"", "@"} {
		_, err = portserver.Listen(bad)
		is.True(err != nil) // an empty address or name is refused
	}
}

// syncBuffer is a log destination that the server writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestPeerIsTheActor(t *testing.T) {
	pid := sleeper(t)
	for _, tt := range []struct {
		name     string
		peer     ledger.Actor
		answered bool
	}{
		{"the process's own user", ledger.Actor{Via: ledger.ViaSocket, UID: os.Getuid(), PID: 777}, true},
		{"another user, not root", ledger.Actor{Via: ledger.ViaSocket, UID: 4242, PID: 778}, os.Getuid() == 4242},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			f := start(t, portserver.Config{Peer: func(net.Conn) (ledger.Actor, error) { return tt.peer, nil }})
			before := f.events(t)
			answer := f.ask(t, strconv.Itoa(pid)+"\n")
			if !tt.answered {
				is.Equal(answer, "")          // another user's process gets nothing
				is.Equal(f.events(t), before) // and nothing is written
				is.Equal(f.srv.Stats().Refused, uint64(1))
				return
			}
			is.True(answer != "") // answered
			e, ok, err := f.log.Last()
			is.NoErr(err)
			is.True(ok)
			is.Equal(e.Type, ledger.EventAllocated) // the allocation
			is.True(e.Actor != nil)                 // carries an actor
			is.Equal(*e.Actor, tt.peer)             // the peer the kernel named
		})
	}
}

// TestAnswerIsFreeOnUDPToo: portpicker promises a port free on TCP and
// UDP, so a port of the part that something holds on UDP alone is not
// handed out.
func TestAnswerIsFreeOnUDPToo(t *testing.T) {
	is := is.New(t)
	part := ledger.Range{Lo: testRange.Hi - 9, Hi: testRange.Hi - 7}
	busy, err := net.ListenPacket("udp", ":"+strconv.Itoa(part.Lo))
	is.NoErr(err) // hold the part's lowest port on UDP
	defer busy.Close()
	f := start(t, portserver.Config{Within: part})
	answer := strings.TrimSpace(f.ask(t, strconv.Itoa(sleeper(t))+"\n"))
	port, err := strconv.Atoi(answer)
	is.NoErr(err)                // answered with a port
	is.True(part.Contains(port)) // of the part
	is.True(port != part.Lo)     // not the one taken on UDP
}
