package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/commands"
	"github.com/portledger/portledger/ledger"
)

func TestWhoRoute(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()

	a := e.allocate(t, "grace_backend")
	_, err := e.svc.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "deploy"})
	is.NoErr(err)
	b := e.allocate(t, "learning")

	// At the first allocation's event: held by grace_backend, released later.
	remote, err := c.Who(ctx, a.Port, a.EventID)
	is.NoErr(err)
	local, err := e.svc.Who(ctx, a.Port, a.EventID)
	is.NoErr(err)
	is.True(sameJSON(t, remote, local))                             // the client answers what the ledger answers
	is.Equal(remote.Holder.Allocation.ServiceName, "grace_backend") // the holder then
	is.Equal(remote.Holder.Release.Reason, "deploy")                // and why it left

	// Now, in raw JSON: the seed's allocation fields under holder.
	status, m := e.call(t, http.MethodGet, "/api/ports/who/"+strconv.Itoa(b.Port), "", "")
	is.Equal(status, http.StatusOK)
	holder, _ := m["holder"].(map[string]any)
	alloc, _ := holder["allocation"].(map[string]any)
	checkAllocationJSON(t, alloc, b)
	_, released := holder["release"]
	is.True(!released) // still held: no release

	for _, bad := range []string{
		"/api/ports/who/abc",
		"/api/ports/who/0",
		"/api/ports/who/27000?at=yesterday-ish",
		"/api/ports/who/27000?at=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)),
	} {
		status, m := e.call(t, http.MethodGet, bad, "", "")
		checkError(t, status, m, http.StatusBadRequest, ledger.EINVALID)
	}
	// A moment before the first event: free, and no as_of.
	status, m = e.call(t, http.MethodGet, "/api/ports/who/"+strconv.Itoa(a.Port)+"?at=2001-01-01", "", "")
	is.Equal(status, http.StatusOK)
	_, hasAsOf := m["as_of"]
	is.True(!hasAsOf)         // before the first event
	is.True(m["next"] != nil) // grace_backend held it next
}

func TestUsageRoute(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	a := e.allocate(t, "api")
	_, err := e.svc.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "done"})
	is.NoErr(err)
	e.allocate(t, "api")
	e.allocate(t, "worker")

	q := ledger.UsageQuery{Since: ledger.SinceID(time.Now().Add(-time.Hour))}
	remote, err := c.Usage(ctx, q)
	is.NoErr(err)
	is.Equal(len(remote), 2)                                // api and worker
	is.Equal(remote[0].Allocations, 2)                      // api allocated twice
	is.Equal(remote[0].Releases, map[string]int{"done": 1}) // and released once
	is.Equal(remote[0].HeldAtEnd, 1)

	status, m := e.call(t, http.MethodGet, "/api/ports/usage?since=7d&service=worker", "", "")
	is.Equal(status, http.StatusOK)
	us, _ := m["usage"].([]any)
	is.Equal(len(us), 1) // one service asked for

	status, m = e.call(t, http.MethodGet, "/api/ports/usage?since=1h&until=2h", "", "")
	checkError(t, status, m, http.StatusBadRequest, ledger.EINVALID) // since after until
	status, m = e.call(t, http.MethodGet, "/api/ports/usage?until=tomorrow", "", "")
	checkError(t, status, m, http.StatusBadRequest, ledger.EINVALID)
}

// TestUsagePagesOverHTTP reads usage through the real server a page at a
// time, with the client's UsageEach and as raw JSON: every service comes
// once, in order, with the counts of the answer read whole.
func TestUsagePagesOverHTTP(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()
	for i := range 12 {
		a := e.allocate(t, fmt.Sprintf("svc-%02d", (i*7)%12))
		if i%3 == 0 {
			_, err := e.svc.Release(ctx, ledger.ReleaseRequest{Port: a.Port, Reason: "done"})
			is.NoErr(err)
		}
	}
	q := ledger.UsageQuery{Since: ledger.SinceID(time.Now().Add(-time.Hour)), Until: ledger.UntilID(time.Now())}
	whole, err := c.Usage(ctx, q)
	is.NoErr(err)
	is.Equal(len(whole), 12) // every service

	for _, limit := range []int{1, 5, 12, 13} {
		var got []ledger.ServiceUsage
		after := ""
		for {
			n := 0
			next, err := c.UsageEach(ctx, q, after, limit, func(u ledger.ServiceUsage) error {
				got = append(got, u)
				n++
				return nil
			})
			is.NoErr(err)
			is.True(n <= limit) // a page
			if next == "" {
				break
			}
			is.Equal(next, got[len(got)-1].Service) // next is the page's last service
			after = next
		}
		is.Equal(got, whole) // the pages are the whole answer, each service once
	}

	until := url.QueryEscape(q.Until.String())
	status, m := e.call(t, http.MethodGet, "/api/ports/usage?since=1h&until="+until+"&limit=5", "", "")
	is.Equal(status, http.StatusOK)
	is.Equal(len(m["usage"].([]any)), 5) // one page
	is.Equal(m["next"], "svc-04")        // the page's last service
	status, m = e.call(t, http.MethodGet, "/api/ports/usage?since=1h&until="+until+"&limit=5&after=svc-09", "", "")
	is.Equal(status, http.StatusOK)
	is.Equal(len(m["usage"].([]any)), 2) // svc-10 and svc-11
	_, more := m["next"]
	is.True(!more) // the last page says no more
	status, m = e.call(t, http.MethodGet, "/api/ports/usage?limit=-1", "", "")
	checkError(t, status, m, http.StatusBadRequest, ledger.EINVALID) // a negative limit
	status, m = e.call(t, http.MethodGet, "/api/ports/usage?after="+strings.Repeat("x", 200), "", "")
	checkError(t, status, m, http.StatusBadRequest, ledger.EINVALID) // an after longer than any name

	// The answer read whole is the same bytes as before it was streamed.
	_, body := e.raw(t, http.MethodGet, "/api/ports/usage?since=1h&until="+until, "", "")
	want, err := json.Marshal(usageBody{Usage: whole})
	is.NoErr(err)
	is.Equal(string(body), string(want)+"\n")
}

// cutUsage is a ledger whose usage answer fails after its first rows, as
// a temporary file that cannot be read midway would, once the first rows
// are on their way.
type cutUsage struct{ ledger.Service }

func (cutUsage) UsageEach(_ context.Context, _ ledger.UsageQuery, _ string, _ int, fn func(ledger.ServiceUsage) error) (string, error) {
	for i := range 2000 { // past the server's buffer: the answer has begun
		if err := fn(ledger.ServiceUsage{Service: fmt.Sprintf("svc-%04d", i), Releases: map[string]int{}}); err != nil {
			return "", err
		}
	}
	return "", errors.New("usage: read temporary file: unexpected EOF")
}

// TestUsageCutMidwayIsAnError: an answer that fails after its first rows
// were sent is cut off, and the client reports an error rather than the
// rows it got as the whole answer.
func TestUsageCutMidwayIsAnError(t *testing.T) {
	is := is.New(t)
	e := newEnv(t, func(c *Config) { c.Service = cutUsage{c.Service} })
	c := e.client()
	var got []string // the rows the client decoded
	_, err := c.UsageEach(context.Background(), ledger.UsageQuery{}, "", 0, func(u ledger.ServiceUsage) error {
		got = append(got, u.Service)
		return nil
	})
	is.True(len(got) > 0) // the rows sent before the cut
	is.True(err != nil)   // and then an error, not a whole answer
	_, err = c.Usage(context.Background(), ledger.UsageQuery{})
	is.True(err != nil)                                            // nor read whole
	is.True(strings.Contains(e.logs.String(), "usage answer cut")) // the daemon says why
}

func TestImportRoute(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	ctx := context.Background()
	c := e.client()

	root := t.TempDir()
	logs := ledger.Layout{Dir: root}.LogsDir()
	is.NoErr(os.MkdirAll(logs, 0o700))
	is.NoErr(os.WriteFile(filepath.Join(logs, "allocations_20251115.jsonl"), []byte(
		`{"timestamp": "2025-11-15T14:30:00Z", "action": "allocate", "port": 8000, "service_name": "grace_backend", "started_by": "serve.py", "purpose": "Main Grace API server"}
{"timestamp": "2025-11-15T16:30:00Z", "action": "release", "port": 8000, "reason": "shutdown", "duration_s": 7200}
`), 0o600))
	orig, err := commands.ReadOriginal(root)
	is.NoErr(err)
	before := e.state(t)

	res, err := c.Import(ctx, orig.Events)
	is.NoErr(err)
	is.Equal(res.Imported, 2) // both lines
	after := e.state(t)
	is.Equal(after.count, before.count+2)
	is.Equal(after.last, before.last) // the past grew, the head did not move

	hist, err := c.History(ctx, ledger.HistoryQuery{Port: 8000})
	is.NoErr(err)
	is.Equal(len(hist), 2)
	is.Equal(*hist[0].Imported, ledger.ImportSource{File: "allocations_20251115.jsonl", Line: 1}) // marked with its source
	is.Equal(hist[1].Released.Reason, "shutdown")

	res, err = c.Import(ctx, orig.Events)
	is.NoErr(err)
	is.Equal(res.Imported, 0)   // a second import adds nothing
	is.Equal(res.Duplicates, 2) // and says so

	// An event without its source is refused, and nothing changes.
	status, m := e.call(t, http.MethodPost, "/api/ports/import",
		`{"events": [{"id": "`+ulid.Make().String()+`", "type": "released", "at": "2025-11-15T16:30:00Z", "port": 8001}]}`, "")
	checkError(t, status, m, http.StatusBadRequest, ledger.EINVALID)
	is.Equal(e.state(t), after)
	status, m = e.call(t, http.MethodPost, "/api/ports/import", `{"events": [], "extra": 1}`, "")
	checkError(t, status, m, http.StatusBadRequest, ledger.EINVALID) // unknown fields
}

// slowUsage is a ledger whose usage answer comes slowly, as a year of a
// million services does on a loaded machine (it takes seconds to count and
// tens of seconds to send): a row every 20 ms.
type slowUsage struct{ ledger.Service }

func (slowUsage) UsageEach(ctx context.Context, _ ledger.UsageQuery, _ string, _ int, fn func(ledger.ServiceUsage) error) (string, error) {
	for i := range slowUsageRows {
		if i%2 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if err := fn(ledger.ServiceUsage{Service: fmt.Sprintf("svc-%04d", i), Releases: map[string]int{}}); err != nil {
			return "", err
		}
	}
	return "", nil
}

const slowUsageRows = 40

// TestUsageOutlivesTheServerTimeouts: a usage answer that takes longer than
// the server's read and write timeouts still arrives whole. The server here
// has timeouts of 150 and 250 ms standing for the daemon's 30 and 60 s.
func TestUsageOutlivesTheServerTimeouts(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	srv := httptest.NewUnstartedServer(NewServer(Config{Service: slowUsage{e.svc}, Events: e.svc, Token: testToken}))
	srv.Config.ConnContext = ConnContext
	srv.Config.ReadTimeout = 150 * time.Millisecond
	srv.Config.WriteTimeout = 250 * time.Millisecond
	srv.Start()
	defer srv.Close()

	start := time.Now()
	us, err := NewClient(srv.URL, testToken).Usage(context.Background(), ledger.UsageQuery{})
	is.NoErr(err)                                                                   // the answer arrived
	is.Equal(len(us), slowUsageRows)                                                // whole
	is.True(time.Since(start) > srv.Config.WriteTimeout)                            // though it took longer than the timeouts
	is.Equal(us[slowUsageRows-1].Service, fmt.Sprintf("svc-%04d", slowUsageRows-1)) // to the last row
}
