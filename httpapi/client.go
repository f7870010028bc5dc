package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// PingTimeout bounds Ping, so that a caller deciding between a daemon and
// the embedded mode never waits long for a daemon that is not there.
const PingTimeout = 500 * time.Millisecond

// Client speaks to a ledger daemon. It implements ledger.Service: every
// method calls the matching route, and an error answer comes back as a
// *ledger.Error with the server's code and message, so callers cannot tell a
// remote error from a local one. Failures to reach the daemon are EINTERNAL.
type Client struct {
	base  string
	token string
	http  *http.Client
	// AllowEphemeral is sent with SetRange: the caller has checked a
	// range among the kernel's ephemeral ports and means it (the CLI's
	// --allow-ephemeral); otherwise the daemon refuses such a range.
	AllowEphemeral bool
}

var (
	_ ledger.Service      = (*Client)(nil)
	_ ledger.EventService = (*Client)(nil)
)

// NewClient returns a client of the daemon at baseURL, e.g.
// "http://127.0.0.1:7999". A non-empty token is sent as a bearer token;
// before it goes to an address of this machine, the kernel's table of TCP
// connections is asked who listens there (Linux): a process of another
// user than this one (or root), one that took the port while the daemon
// was down, is refused with ErrUntrustedDaemon and is sent nothing.
func NewClient(baseURL string, token string) *Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 5 * time.Second}
	t.DialContext = d.DialContext
	if token != "" {
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if uid, ok := loopbackPeerUID(conn); ok && uid != os.Getuid() && uid != 0 {
				conn.Close()
				return nil, fmt.Errorf("%w: the process listening on %s runs as uid %d, not as you (uid %d): the token was not sent",
					ErrUntrustedDaemon, addr, uid, os.Getuid())
			}
			return conn, nil
		}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: &http.Client{Transport: t}}
}

// ErrUntrustedDaemon is the error of a socket client whose socket is
// served by a process of another user: it sends that process nothing.
var ErrUntrustedDaemon = errors.New("untrusted daemon")

// NewSocketClient returns a client of the daemon listening on the unix socket
// at socketPath. Before it sends anything on a new connection it asks the
// kernel who listens (SO_PEERCRED): a process of another user than this
// one (or root) is refused with ErrUntrustedDaemon, so that a socket put in
// the data directory by someone else never sees a request or decides an
// answer.
func NewSocketClient(socketPath string, token string) *Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	d := &net.Dialer{Timeout: 5 * time.Second}
	t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, "unix", socketPath)
		if err != nil {
			return nil, err
		}
		p, err := PeerCred(conn.(*net.UnixConn))
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: %s: %v", ErrUntrustedDaemon, socketPath, err)
		}
		if me := os.Getuid(); p.UID != me && p.UID != 0 {
			conn.Close()
			return nil, fmt.Errorf("%w: the process on %s (pid %d) runs as uid %d, not as you (uid %d): nothing was sent; check who can write the data directory",
				ErrUntrustedDaemon, socketPath, p.PID, p.UID, me)
		}
		return conn, nil
	}
	return &Client{base: "http://ledger", token: token, http: &http.Client{Transport: t}}
}

// Ping checks that a daemon answers GET /healthz, giving up after
// PingTimeout.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.DaemonPID(ctx)
	return err
}

// DaemonPID asks the daemon for its process ID (GET /healthz), giving up
// after PingTimeout.
func (c *Client) DaemonPID(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	var body healthzBody
	err := c.do(ctx, http.MethodGet, "/healthz", nil, nil, &body)
	return body.PID, err
}

// RangeHeader carries, on an allocation's answer, the managed range the
// port was chosen from, so that the client can check the answer.
const RangeHeader = "X-Ledger-Range"

// Allocate hands a port to a service; see ledger.Service. The answer is
// checked before it is believed: the port must be a TCP port, the preferred
// one if one was asked for, and inside the range the daemon names
// (RangeHeader); an answer that fails is an EINTERNAL error.
func (c *Client) Allocate(ctx context.Context, req ledger.AllocateRequest) (ledger.Allocation, error) {
	var a ledger.Allocation
	resp, err := c.send(ctx, http.MethodPost, "/api/ports/allocations", nil, req, "application/json")
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxBodyBytes)).Decode(&a); err != nil {
		return a, fmt.Errorf("POST /api/ports/allocations: decode answer: %w", err)
	}
	if err := checkAllocation(a, req, resp.Header.Get(RangeHeader)); err != nil {
		return ledger.Allocation{}, err
	}
	return a, nil
}

// checkAllocation refuses an allocation answer that cannot be right.
func checkAllocation(a ledger.Allocation, req ledger.AllocateRequest, rangeHeader string) error {
	bad := func(format string, args ...any) error {
		return ledger.Errorf(ledger.EINTERNAL, "the daemon's answer is refused: "+format, args...)
	}
	if ledger.CheckPort(a.Port) != nil {
		return bad("port %d is not a TCP port", a.Port)
	}
	if req.Port != 0 && a.Port != req.Port {
		return bad("port %d was asked for, %d answered", req.Port, a.Port)
	}
	if a.ServiceName != req.ServiceName {
		return bad("the allocation is for %q, not %q", a.ServiceName, req.ServiceName)
	}
	if rangeHeader == "" {
		return nil
	}
	rng, err := ledger.ParseRange(rangeHeader)
	if err != nil {
		return bad("range %q: %v", rangeHeader, ledger.ErrorMessage(err))
	}
	if !rng.Contains(a.Port) {
		return bad("port %d is outside the managed range %s", a.Port, rng)
	}
	return nil
}

// RegisterPID records the process that holds a port; see ledger.Service.
func (c *Client) RegisterPID(ctx context.Context, port, pid int) (ledger.Allocation, error) {
	var a ledger.Allocation
	err := c.do(ctx, http.MethodPost, portPath(port)+"/pid", nil, pidBody{PID: &pid}, &a)
	return a, err
}

// ReportStats records a service's request and error totals; see
// ledger.Service.
func (c *Client) ReportStats(ctx context.Context, port int, requests, errs int64) error {
	return c.do(ctx, http.MethodPost, portPath(port)+"/stats", nil,
		statsBody{RequestCount: &requests, ErrorCount: &errs}, nil)
}

// Release frees a port and returns the released event; see ledger.Service.
func (c *Client) Release(ctx context.Context, req ledger.ReleaseRequest) (ledger.Event, error) {
	q := url.Values{}
	if req.Reason != "" {
		q.Set("reason", req.Reason)
	}
	if req.ReleasedBy != "" {
		q.Set("released_by", req.ReleasedBy)
	}
	if !req.EventID.IsZero() {
		q.Set("event_id", req.EventID.String())
	}
	var e ledger.Event
	err := c.do(ctx, http.MethodDelete, portPath(req.Port), q, nil, &e)
	return e, err
}

// SetRange changes the managed range; see ledger.Service.
func (c *Client) SetRange(ctx context.Context, r ledger.Range) error {
	return c.do(ctx, http.MethodPut, "/api/ports/range", nil, rangeBody{PortRange: r.String(), AllowEphemeral: c.AllowEphemeral}, nil)
}

// Status returns the registry at a point (zero: now) with the daemon's
// watchdog counters; see ledger.Service.
func (c *Client) Status(ctx context.Context, at ulid.ULID) (ledger.Status, error) {
	var st ledger.Status
	err := c.do(ctx, http.MethodGet, "/api/ports/status", pointQuery("at", at, nil), nil, &st)
	return st, err
}

// Allocations lists allocations at a point; see ledger.Service.
func (c *Client) Allocations(ctx context.Context, q ledger.AllocationQuery) ([]ledger.Allocation, error) {
	v := pointQuery("at", q.At, nil)
	if q.Service != "" {
		v.Set("service", q.Service)
	}
	var body allocationsBody
	err := c.do(ctx, http.MethodGet, "/api/ports/allocations", v, nil, &body)
	return body.Allocations, err
}

// Allocation returns the holder of one port at a point; see ledger.Service.
func (c *Client) Allocation(ctx context.Context, port int, at ulid.ULID) (ledger.Allocation, error) {
	var a ledger.Allocation
	err := c.do(ctx, http.MethodGet, portPath(port), pointQuery("at", at, nil), nil, &a)
	return a, err
}

// History returns the events that match q, oldest first (newest first with
// q.Newest); see ledger.Service. It follows the daemon's pages until it has
// q.Limit events or all of them.
func (c *Client) History(ctx context.Context, q ledger.HistoryQuery) ([]ledger.Event, error) {
	out := []ledger.Event{}
	for {
		v := pointQuery("since", q.Since, nil)
		v = pointQuery("until", q.Until, v)
		if q.Port != 0 {
			v.Set("port", strconv.Itoa(q.Port))
		}
		if q.Service != "" {
			v.Set("service", q.Service)
		}
		if q.Limit != 0 {
			v.Set("limit", strconv.Itoa(q.Limit-len(out)))
		}
		if q.Newest {
			v.Set("order", "newest")
		}
		if q.Type != "" {
			v.Set("type", string(q.Type))
		}
		var body historyBody
		if err := c.do(ctx, http.MethodGet, "/api/ports/history", v, nil, &body); err != nil {
			return nil, err
		}
		out = append(out, body.Events...)
		if body.Next == "" || (q.Limit != 0 && len(out) >= q.Limit) {
			return out, nil
		}
		next, err := ulid.ParseStrict(body.Next)
		if err != nil {
			return nil, fmt.Errorf("history: the daemon's next page %q: %w", body.Next, err)
		}
		if q.Newest {
			q.Until = next
		} else {
			q.Since = next
		}
	}
}

// HealthCheck runs one watchdog sweep in the daemon and returns its results.
// It returns EUNAVAILABLE when the daemon runs no watchdog.
func (c *Client) HealthCheck(ctx context.Context) (ledger.SweepResult, error) {
	var res ledger.SweepResult
	err := c.do(ctx, http.MethodPost, "/api/ports/health-check", nil, nil, &res)
	return res, err
}

// WatchdogStatus returns the daemon's watchdog counters.
func (c *Client) WatchdogStatus(ctx context.Context) (ledger.WatchdogStatus, error) {
	var st ledger.WatchdogStatus
	err := c.do(ctx, http.MethodGet, "/api/ports/watchdog/status", nil, nil, &st)
	return st, err
}

// do sends one request and decodes a 2xx answer into out (unless out is nil
// or the answer is empty). Any other answer becomes a *ledger.Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	resp, err := c.send(ctx, method, path, q, in, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// send sends one request and returns a 2xx response, whose body the caller
// closes; any other status is read and returned as a *ledger.Error.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, in any, accept string) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ledger daemon: %w", err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, readError(resp)
}

// readError turns an error answer back into the *ledger.Error the server
// sent.
func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes))
	var eb errorBody
	if err := json.Unmarshal(b, &eb); err == nil && eb.Code != "" {
		return &ledger.Error{Code: eb.Code, Message: eb.Error}
	}
	return ledger.Errorf(ledger.EINTERNAL, "ledger daemon answered %s", resp.Status)
}

// portPath is the path of one port's allocation.
func portPath(port int) string {
	return "/api/ports/allocations/" + strconv.Itoa(port)
}

// pointQuery adds name=<ULID> to v (made if nil) unless id is zero.
func pointQuery(name string, id ulid.ULID, v url.Values) url.Values {
	if v == nil {
		v = url.Values{}
	}
	if !id.IsZero() {
		v.Set(name, id.String())
	}
	return v
}

// VerifyChain asks the daemon to walk its log's hash chain
// (GET /api/ports/verify).
func (c *Client) VerifyChain(ctx context.Context) (ledger.ChainReport, error) {
	var rep ledger.ChainReport
	err := c.do(ctx, http.MethodGet, "/api/ports/verify", nil, nil, &rep)
	return rep, err
}

// Backup copies the daemon's ledger file to w (GET /api/backup) and
// returns the bytes written. A copy cut short is an error.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, http.MethodGet, "/api/backup", nil, nil, "application/octet-stream")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET /api/backup: %w", err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("GET /api/backup: got %d of %d bytes", n, resp.ContentLength)
	}
	return n, nil
}
