package watchdog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/portledger/portledger/ledger"
)

// endpointProber fetches health URLs, on loopback addresses only.
type endpointProber struct {
	timeout time.Duration
	client  *http.Client
}

// newEndpointProber returns a prober whose fetches give up after timeout.
// Its dialer refuses any address that is not loopback, so a name that
// resolves elsewhere is never contacted either; it uses no proxy, follows no
// redirect (a 3xx is an answer) and keeps no idle connections between sweeps.
func newEndpointProber(timeout time.Duration) *endpointProber {
	d := &net.Dialer{
		Timeout: timeout,
		Control: func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("%s is not a loopback address", host)
			}
			return nil
		},
	}
	return &endpointProber{
		timeout: timeout,
		client: &http.Client{
			Timeout: timeout,
			Transport: &http.Transport{
				Proxy:                  nil,
				DialContext:            d.DialContext,
				DisableKeepAlives:      true,
				TLSHandshakeTimeout:    timeout,
				ResponseHeaderTimeout:  timeout,
				MaxResponseHeaderBytes: 64 << 10,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// check fetches rawURL once. It returns "ok" and true for a 2xx or 3xx answer
// within the timeout, what failed and false otherwise, and a note and true
// when the URL is not fetched at all because its host is not loopback (the
// watchdog only ever talks to this machine).
func (p *endpointProber) check(ctx context.Context, rawURL string) (string, bool) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "not checked: not an http(s) URL", true
	}
	if !ledger.IsLoopbackHost(u.Hostname()) {
		return fmt.Sprintf("not checked: %s is not a loopback address", u.Hostname()), true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "not checked: " + err.Error(), true
	}
	req.Header.Set("User-Agent", "portledger-watchdog")
	resp, err := p.client.Do(req)
	if err != nil {
		return describeFetchError(err, p.timeout), false
	}
	// Drain a little so the server sees a clean end, never a big body.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Sprintf("status %d", resp.StatusCode), false
	}
	return "ok", true
}

// describeFetchError turns a client error into a short phrase.
func describeFetchError(err error, timeout time.Duration) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.Canceled):
		return "check cancelled"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:] // the cause, without the URL the caller already knows
	}
	return msg
}
