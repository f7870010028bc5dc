// Package portserver speaks the portserver protocol of Python's portpicker
// (and of Google's portserver), so that test suites which already ask a
// port server get their ports from the ledger: audited, visible in status,
// released by the watchdog when the asking process is gone.
//
// The protocol is one request per connection: the client sends its process
// ID in ASCII and a newline; the server answers a port and a newline, or
// closes the connection without a word, and the client then picks a port by
// itself.
package portserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

// Defaults and limits.
const (
	// DefaultService is the service name of the allocations it makes.
	DefaultService = "portpicker"
	// MaxRequest is the longest request line, newline excluded. A PID has
	// at most 10 digits; a longer line is not a request.
	MaxRequest = 32
	// DefaultReadTimeout is how long a client may take to send its line.
	DefaultReadTimeout = time.Second
	// MaxConns bounds the connections served at once; more wait in the
	// listener's backlog.
	MaxConns = 256
	// allocateTimeout bounds one allocation, commit included.
	allocateTimeout = 10 * time.Second
)

// Allocator is what the server needs of the ledger.
type Allocator interface {
	// Allocate hands a port to a service (see ledger.Service).
	Allocate(ctx context.Context, req ledger.AllocateRequest) (ledger.Allocation, error)
}

// Config configures a Server.
type Config struct {
	Ledger Allocator
	// Service names the allocations; default DefaultService.
	Service string
	// Within is the part of the managed range to hand out; the zero Range
	// for the whole range.
	Within ledger.Range
	// Process looks a client's process up; default commands.LookupProcess.
	Process func(pid int) (commands.ProcessInfo, error)
	// ReadTimeout bounds the wait for a request line; default
	// DefaultReadTimeout.
	ReadTimeout time.Duration
	// Logger gets a line for every request that is not answered; default
	// slog.Default().
	Logger *slog.Logger
	// Peer, if set, names the process that connected, as the kernel knows
	// it (SO_PEERCRED): it becomes the actor of the allocation, and the
	// ledger then hands a port only for a process of that user (or for
	// any, to root). Without it, the ledger judges the PID as the
	// daemon's own user's request.
	Peer func(net.Conn) (ledger.Actor, error)
}

// Stats counts the requests a Server has seen, by outcome.
type Stats struct {
	Answered  uint64 `json:"answered"`  // a port was allocated and sent
	Malformed uint64 `json:"malformed"` // the line was not a PID, too long or too slow
	Refused   uint64 `json:"refused"`   // the PID is no process, is init or the daemon itself
	Exhausted uint64 `json:"exhausted"` // no free port was left
	Failed    uint64 `json:"failed"`    // the ledger failed otherwise, or the answer could not be sent
}

// Server answers portserver requests with allocations.
type Server struct {
	cfg  Config
	self int
	sem  chan struct{}

	answered, malformed, refused, exhausted, failed atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	closed bool
	conns  sync.WaitGroup
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Ledger == nil {
		return nil, errors.New("portserver: no ledger")
	}
	if cfg.Service == "" {
		cfg.Service = DefaultService
	}
	if err := commands.ValidateServiceName(cfg.Service); err != nil {
		return nil, err
	}
	if cfg.Within != (ledger.Range{}) {
		if err := cfg.Within.Validate(); err != nil {
			return nil, err
		}
	}
	if cfg.Process == nil {
		cfg.Process = commands.LookupProcess
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, self: os.Getpid(), sem: make(chan struct{}, MaxConns),
		ctx: ctx, cancel: cancel, lns: make(map[net.Listener]struct{}),
	}, nil
}

// Stats returns the counts so far.
func (s *Server) Stats() Stats {
	return Stats{
		Answered: s.answered.Load(), Malformed: s.malformed.Load(), Refused: s.refused.Load(),
		Exhausted: s.exhausted.Load(), Failed: s.failed.Load(),
	}
}

// Serve accepts connections on ln and answers each on its own goroutine
// until Close. It returns nil after Close, else the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	for {
		select {
		case s.sem <- struct{}{}:
		case <-s.ctx.Done():
			return nil
		}
		c, err := ln.Accept()
		if err != nil {
			<-s.sem
			if s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.conns.Add(1)
		go func() {
			defer func() { <-s.sem; s.conns.Done() }()
			s.serveConn(c)
		}()
	}
}

// Close stops every Serve, closes their listeners and waits for the
// requests in progress; their allocations are cancelled if not yet taken.
func (s *Server) Close() error {
	s.cancel() // first: a Serve that sees its listener closed knows why
	s.mu.Lock()
	s.closed = true
	var errs []error
	for ln := range s.lns {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.mu.Unlock()
	s.conns.Wait()
	return errors.Join(errs...)
}

// serveConn answers one request. Every way out but the answer closes the
// connection without writing to it, as the protocol wants.
func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	log := s.cfg.Logger.With("portserver", c.LocalAddr().String())
	_ = c.SetDeadline(time.Now().Add(s.cfg.ReadTimeout))
	pid, err := readPID(c)
	if err != nil {
		s.malformed.Add(1)
		log.Info("portserver: request dropped", "reason", err.Error())
		return
	}
	ctx := s.ctx
	if s.cfg.Peer != nil {
		actor, err := s.cfg.Peer(c)
		if err != nil {
			s.refused.Add(1)
			log.Warn("portserver: request dropped", "pid", pid, "reason", "the peer's credentials: "+err.Error())
			return
		}
		ctx = ledger.WithActor(ctx, actor)
	}
	a, err := s.allocate(ctx, pid)
	if err != nil {
		switch {
		case ledger.ErrorCode(err) == ledger.EEXHAUSTED:
			s.exhausted.Add(1)
			log.Warn("portserver: no port for pid", "pid", pid, "reason", ledger.ErrorMessage(err))
		case errors.Is(err, errRefused):
			s.refused.Add(1)
			log.Info("portserver: no port for pid", "pid", pid, "reason", err.Error())
		default:
			s.failed.Add(1)
			log.Error("portserver: no port for pid", "pid", pid, "err", err.Error())
		}
		return
	}
	// The allocation is committed; the answer goes out in one write, as
	// portpicker reads it with one recv.
	_ = c.SetWriteDeadline(time.Now().Add(s.cfg.ReadTimeout))
	if _, err := c.Write([]byte(strconv.Itoa(a.Port) + "\n")); err != nil {
		s.failed.Add(1)
		log.Warn("portserver: answer not delivered; the watchdog frees the port when the process is gone", "pid", pid, "port", a.Port, "err", err.Error())
		return
	}
	s.answered.Add(1)
}

// errRefused marks a request from a PID that gets no port.
var errRefused = errors.New("refused")

// allocate makes the allocation for a client's PID: the PID (with its start
// time, recorded by the ledger) holds the port, its command line is
// started_by, and the port is free on TCP and UDP, as portpicker promises.
func (s *Server) allocate(ctx context.Context, pid int) (ledger.Allocation, error) {
	switch {
	case pid <= 1:
		return ledger.Allocation{}, fmt.Errorf("%w: pid %d is not a client's", errRefused, pid)
	case pid == s.self:
		return ledger.Allocation{}, fmt.Errorf("%w: pid %d is the daemon's own", errRefused, pid)
	}
	info, err := s.cfg.Process(pid)
	if err != nil {
		return ledger.Allocation{}, fmt.Errorf("%w: %s", errRefused, ledger.ErrorMessage(err))
	}
	req := ledger.AllocateRequest{
		ServiceName: s.cfg.Service,
		StartedBy:   startedBy(info.Cmdline, pid),
		Purpose:     "portserver request",
		PID:         pid,
		Proto:       ledger.ProtoBoth,
		// The client holds the port while it lives, listening or not:
		// a test runner often asks for a port that a server it starts
		// later binds. The lease bounds that, as long as the ledger allows.
		Lease: commands.MaxLease.Seconds(),
	}
	if s.cfg.Within != (ledger.Range{}) {
		req.Within = s.cfg.Within.String()
	}
	ctx, cancel := context.WithTimeout(ctx, allocateTimeout)
	defer cancel()
	a, err := s.cfg.Ledger.Allocate(ctx, req)
	switch ledger.ErrorCode(err) {
	case ledger.EINVALID, ledger.EFORBIDDEN:
		// The process exited between the two lookups, is a kernel
		// thread, or belongs to another user than the daemon's.
		return a, fmt.Errorf("%w: %s", errRefused, ledger.ErrorMessage(err))
	}
	return a, err
}

// readPID reads one request line and parses the PID in it: 1 to 10 ASCII
// digits and a newline, at most MaxRequest bytes before the newline.
func readPID(c net.Conn) (int, error) {
	var buf [MaxRequest + 1]byte
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return parsePID(buf[:i])
		}
		if n == len(buf) {
			return 0, fmt.Errorf("request line longer than %d bytes", MaxRequest)
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, fmt.Errorf("no request line within the read timeout (%d bytes read)", n)
			}
			return 0, fmt.Errorf("connection ended before a newline (%d bytes read)", n)
		}
	}
}

// parsePID accepts 1-10 ASCII digits, nothing else: no sign, no spaces.
func parsePID(b []byte) (int, error) {
	if len(b) == 0 || len(b) > 10 {
		return 0, fmt.Errorf("request %q: want a pid of 1 to 10 digits", clipQuote(b))
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("request %q: want a pid of 1 to 10 digits", clipQuote(b))
		}
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, fmt.Errorf("request %q: %w", clipQuote(b), err)
	}
	return pid, nil
}

func clipQuote(b []byte) string {
	return strings.ToValidUTF8(string(b), "?")
}

// startedBy turns a command line into a started_by the ledger accepts:
// valid UTF-8, no control characters, at most commands.MaxStartedBy bytes.
func startedBy(cmdline string, pid int) string {
	s := strings.ToValidUTF8(cmdline, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if s == "" {
		s = "pid " + strconv.Itoa(pid)
	}
	if len(s) > commands.MaxStartedBy {
		i := commands.MaxStartedBy
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return s
}
