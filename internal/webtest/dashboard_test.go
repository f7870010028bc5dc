package webtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
	"github.com/portledger/portledger/ledger"
)

// rowPorts returns the ports of the allocations table, in its order.
func rowPorts(tb testing.TB, t *tab) []int {
	tb.Helper()
	return evalJS[[]int](tb, t, `[...document.querySelectorAll("#alloc-rows tr[data-port]")].map(r => Number(r.dataset.port))`)
}

// hasRow is the JavaScript test for a row of port in the table.
func hasRow(port int) string {
	return fmt.Sprintf(`document.querySelector('#alloc-rows tr[data-port="%d"]') !== null`, port)
}

// dashboardURL returns the URL that `ledger serve` printed for the
// dashboard, read from its log line "msg=dashboard url=...".
func dashboardURL(tb testing.TB, d *daemon) string {
	tb.Helper()
	re := regexp.MustCompile(`msg=dashboard url="?([^"\s]+)`)
	var url string
	testbin.WaitFor(tb, "ledger serve prints the dashboard's URL", func() bool {
		sc := bufio.NewScanner(strings.NewReader(d.Stderr.String()))
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				url = m[1]
				return true
			}
		}
		return false
	})
	return url
}

// TestDashboardFollowsTheLedgerLive opens the page, then allocates and
// releases with the CLI: the allocation appears in the table within a
// second without a reload, and disappears when released; the page logs no
// error on the way.
func TestDashboardFollowsTheLedgerLive(t *testing.T) {
	is := is.New(t)
	d := startDaemon(t, t.TempDir(), "--interval", "1h")
	held := d.allocate(t, "already-there", "--purpose", "held before the page opened")
	tb := newTab(t, 60*time.Second)
	tb.open(t, dashboardURL(t, d))
	is.Equal(rowPorts(t, tb), []int{held}) // the table shows the registry

	evalJS[int](t, tb, `window.__loads = (window.__loads || 0) + 1`)

	port := d.allocate(t, "api", "--purpose", "live test")
	tb.waitJS(t, "the new allocation appears", hasRow(port), time.Second)
	cells := evalJS[[]string](t, tb, fmt.Sprintf(`[...document.querySelector('#alloc-rows tr[data-port="%d"]').cells].map(c => c.textContent)`, port))
	is.Equal(cells[1], "api")       // service column
	is.Equal(cells[5], "live test") // purpose column

	d.ledger(t, "release", strconv.Itoa(port), "--reason", "done")
	tb.waitJS(t, "the released allocation disappears", "!("+hasRow(port)+")", time.Second)
	is.Equal(rowPorts(t, tb), []int{held}) // back to the one holder

	still := evalJS[int](t, tb, `window.__loads`)
	is.Equal(still, 1) // the page was never reloaded

	strip := evalJS[string](t, tb, fmt.Sprintf(`document.querySelector('#strip rect[data-port="%d"]').getAttribute("class")`, held))
	is.Equal(strip, "held")                     // the strip marks the held port
	is.Equal(tb.consoleErrors(), []string(nil)) // no console errors
}

// TestDashboardSliderShowsThePast moves the time slider to a moment between
// two allocations: the table shows the registry of that moment, the same as
// `ledger status --at`; "Now" goes back to the live registry.
func TestDashboardSliderShowsThePast(t *testing.T) {
	is := is.New(t)
	d := startDaemon(t, t.TempDir(), "--interval", "1h")
	first := d.allocate(t, "first")
	time.Sleep(1200 * time.Millisecond)
	second := d.allocate(t, "second")
	tb := newTab(t, 60*time.Second)
	tb.open(t, dashboardURL(t, d))
	is.Equal(rowPorts(t, tb), []int{first, second}) // live: both

	// The moment halfway between the two allocated events.
	var at = map[int]time.Time{}
	for _, e := range d.history(t) {
		if e.Type == ledger.EventAllocated {
			at[e.Port] = e.At
		}
	}
	mid := at[first].Add(at[second].Sub(at[first]) / 2)
	// The slider's value for mid, on the page's own scale.
	script := fmt.Sprintf(`(() => {
		const s = document.getElementById("slider");
		const lo = %d, hi = Date.now();
		s.value = String(Math.round((%d - lo) / (hi - lo) * Number(s.max)));
		s.dispatchEvent(new Event("input", {bubbles: true}));
		return s.value;
	})()`, d.firstEventAt(t).UnixMilli(), mid.UnixMilli())
	evalJS[string](t, tb, script)
	tb.waitJS(t, "the page shows the past", `document.body.dataset.mode === "past" && !!document.body.dataset.at`, 5*time.Second)
	shownAt := evalJS[string](t, tb, `document.body.dataset.at`)
	tb.waitJS(t, "the past registry is drawn", `!document.querySelector('#alloc-rows tr[data-port="`+strconv.Itoa(second)+`"]')`, 5*time.Second)

	st := d.status(t, shownAt)
	var want []int
	for _, a := range st.PortManager.Allocations {
		want = append(want, a.Port)
	}
	slices.Sort(want)
	is.Equal(rowPorts(t, tb), want) // the page shows what `ledger status --at` shows
	is.Equal(want, []int{first})    // which is the first allocation alone
	around := evalJS[int](t, tb, `document.querySelectorAll("#around-rows tr").length`)
	is.True(around >= 1) // the events around the moment are listed

	tb.run(t, "click Now", chromedp.Click(chromedp.CSS("#now")))
	tb.waitJS(t, "back to live", `document.body.dataset.mode === "live" && `+hasRow(second), 5*time.Second)
	is.Equal(rowPorts(t, tb), []int{first, second}) // live again
	is.Equal(tb.consoleErrors(), []string(nil))     // no console errors
}

// TestDashboardReleaseButton releases a port from the page with a typed
// reason, on a daemon with a token: the page got the token once through
// the URL `ledger serve` printed (a session cookie), and a page that did
// not is refused.
func TestDashboardReleaseButton(t *testing.T) {
	is := is.New(t)
	const token = "dashboard-test-token-0123456789"
	d := startDaemon(t, t.TempDir(), "--interval", "1h", "--token", token)
	port := d.allocateHTTP(t, token, "to-release")
	url := dashboardURL(t, d)
	is.True(strings.Contains(url, "/login?token=")) // the printed URL hands the token over

	tests := []struct {
		name     string
		login    bool
		released bool
	}{
		{"without the token the release is refused", false, false},
		{"with the session the release goes through", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			tb := newTab(t, 60*time.Second)
			if tt.login {
				tb.open(t, url)
				loc := evalJS[string](t, tb, `location.href`)
				is.True(!strings.Contains(loc, token)) // the token left the address bar
				cookie := evalJS[string](t, tb, `document.cookie`)
				is.Equal(cookie, "") // the script cannot read the session
			} else {
				// Without the session the page reads what the API's open
				// routes give and says how to get the rest.
				tb.open(t, d.base+"/")
				tb.waitJS(t, "the page says it is read-only", `document.getElementById("auth").textContent.includes("read-only")`, 5*time.Second)
			}
			reason := "freed from the dashboard " + tt.name
			tb.waitJS(t, "the row is drawn", hasRow(port), 5*time.Second)
			// The release dialog of the port, opened from its row when the
			// page could read the table, typed into and confirmed.
			tb.run(t, "release from the page",
				chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
					const b = document.querySelector('#alloc-rows tr[data-port="%d"] button.release');
					if (b) { b.click(); return; }
					const d = document.getElementById("release-dialog");
					d.dataset.port = "%d"; d.dataset.event = ""; d.showModal();
				})()`, port, port)),
				chromedp.WaitVisible(chromedp.CSS("#release-reason")),
				chromedp.SendKeys(chromedp.CSS("#release-reason"), reason),
				chromedp.Click(chromedp.CSS("#release-ok")),
			)
			if tt.released {
				tb.waitJS(t, "the row disappears", "!("+hasRow(port)+")", 5*time.Second)
				evs := d.historyHTTP(t, token, port)
				last := evs[len(evs)-1]
				is.True(last.Released != nil)                   // the port was released
				is.Equal(last.Released.Reason, reason)          // with the typed reason
				is.Equal(last.Released.ReleasedBy, "dashboard") // by the dashboard
				is.Equal(tb.consoleErrors(), []string(nil))     // no console errors
				return
			}
			tb.waitJS(t, "the page says why", `document.getElementById("message").textContent.includes("token")`, 5*time.Second)
			evs := d.historyHTTP(t, token, port)
			is.Equal(evs[len(evs)-1].Type, ledger.EventAllocated) // still allocated
		})
	}
}

// TestDashboardPortPage opens a port's page after three services held it
// in turn: the timeline shows their bars in order, with the releases'
// reasons on hover, and the history table lists every event.
func TestDashboardPortPage(t *testing.T) {
	is := is.New(t)
	d := startDaemon(t, t.TempDir(), "--interval", "1h")
	port := d.allocate(t, "one")
	d.ledger(t, "release", strconv.Itoa(port), "--reason", "first is done")
	d.allocate(t, "two", "--port", strconv.Itoa(port))
	d.ledger(t, "release", strconv.Itoa(port), "--reason", "second is done")
	d.allocate(t, "three", "--port", strconv.Itoa(port))

	tb := newTab(t, 60*time.Second)
	tb.open(t, dashboardURL(t, d)+"#/port/"+strconv.Itoa(port))
	tb.waitJS(t, "the port page is drawn", `document.body.dataset.port === "`+strconv.Itoa(port)+`"`, 5*time.Second)
	holders := evalJS[[]string](t, tb, `[...document.querySelectorAll("#timeline rect[data-service]")].map(r => r.dataset.service)`)
	is.Equal(holders, []string{"one", "two", "three"}) // holders in order
	marks := evalJS[[]string](t, tb, `[...document.querySelectorAll("#timeline circle.released title")].map(t => t.textContent)`)
	is.Equal(len(marks), 2)                               // two releases marked
	is.True(strings.Contains(marks[0], "first is done"))  // the reason on hover
	is.True(strings.Contains(marks[1], "second is done")) // in order
	rows := evalJS[int](t, tb, `document.querySelectorAll("#port-rows tr").length`)
	is.Equal(rows, len(d.historyPort(t, port))) // one row per event of the port
	is.Equal(tb.consoleErrors(), []string(nil)) // no console errors
}

// TestDashboardScreenshot draws a small, busy ledger and takes the page's
// screenshot; with UPDATE_SCREENSHOT=1 it is written to docs/dashboard.png.
func TestDashboardScreenshot(t *testing.T) {
	is := is.New(t)
	d := startDaemon(t, t.TempDir(), "--interval", "1h")
	for _, s := range []struct{ name, purpose string }{
		{"api", "REST API"}, {"web", "front end dev server"}, {"worker", "queue consumer"},
		{"postgres-proxy", "db tunnel"}, {"docs", "mkdocs serve"}, {"metrics", "grafana"},
	} {
		d.allocate(t, s.name, "--purpose", s.purpose)
	}
	p := d.allocate(t, "e2e-run-17", "--purpose", "integration tests")
	d.ledger(t, "release", strconv.Itoa(p), "--reason", "tests finished")
	tb := newTab(t, 60*time.Second)
	tb.open(t, dashboardURL(t, d))
	tb.waitJS(t, "usage drawn", `document.querySelectorAll("#usage rect").length > 0`, 5*time.Second)
	png := screenshot(t, tb)
	is.True(len(png) > 1000) // a picture was taken
	if os.Getenv("UPDATE_SCREENSHOT") == "" {
		return
	}
	out := filepath.Join("..", "..", "docs", "dashboard.png")
	is.NoErr(os.MkdirAll(filepath.Dir(out), 0o755))
	is.NoErr(os.WriteFile(out, png, 0o644)) // write docs/dashboard.png
	t.Logf("wrote %s (%d bytes)", out, len(png))
}

// history returns every event, as `ledger history --json` prints it.
func (d *daemon) history(tb testing.TB, filter ...string) []ledger.Event {
	tb.Helper()
	var h struct {
		Events []ledger.Event `json:"events"`
	}
	if err := json.Unmarshal([]byte(d.ledger(tb, append([]string{"history", "--json"}, filter...)...)), &h); err != nil {
		tb.Fatalf("history --json: %v", err)
	}
	return h.Events
}

// historyPort returns the events of one port.
func (d *daemon) historyPort(tb testing.TB, port int) []ledger.Event {
	tb.Helper()
	return d.history(tb, "--port", strconv.Itoa(port))
}

// firstEventAt returns the time of the log's first event.
func (d *daemon) firstEventAt(tb testing.TB) time.Time {
	tb.Helper()
	evs := d.history(tb)
	if len(evs) == 0 {
		tb.Fatal("the log is empty")
	}
	return evs[0].At
}

// allocateHTTP allocates over the REST API with the bearer token.
func (d *daemon) allocateHTTP(tb testing.TB, token, service string) int {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, d.base+"/api/ports/allocations",
		strings.NewReader(`{"service_name":"`+service+`","started_by":"test","purpose":"release from the page"}`))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	var a ledger.Allocation
	d.do(tb, req, &a)
	return a.Port
}

// historyHTTP reads a port's events over the REST API with the token.
func (d *daemon) historyHTTP(tb testing.TB, token string, port int) []ledger.Event {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, d.base+"/api/ports/history?port="+strconv.Itoa(port), nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	var h struct {
		Events []ledger.Event `json:"events"`
	}
	d.do(tb, req, &h)
	return h.Events
}

// do sends req and decodes a 2xx JSON answer into out.
func (d *daemon) do(tb testing.TB, req *http.Request, out any) {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&e)
		tb.Fatalf("%s %s: %s %v", req.Method, req.URL, resp.Status, e)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
}

// TestDashboardPhoneWidthAndDarkTheme draws the page as a phone in dark
// mode would: nothing is wider than the screen (the tables scroll in their
// own boxes), and the page takes the dark colours.
func TestDashboardPhoneWidthAndDarkTheme(t *testing.T) {
	is := is.New(t)
	d := startDaemon(t, t.TempDir(), "--interval", "1h")
	d.allocate(t, "a-service-with-a-rather-long-name", "--purpose", "a purpose long enough to need wrapping on a phone")
	tb := newTab(t, 60*time.Second)
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
	is.NoErr(err) // ask for the dark theme
	tb.run(t, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3)))
	tb.open(t, dashboardURL(t, d))
	overflow := evalJS[int](t, tb, `document.documentElement.scrollWidth - window.innerWidth`)
	is.True(overflow <= 0) // no sideways scrolling of the page
	bg := evalJS[string](t, tb, `getComputedStyle(document.body).backgroundColor`)
	is.Equal(bg, "rgb(21, 23, 26)") // the dark background
	if os.Getenv("UPDATE_SCREENSHOT") != "" {
		png := screenshot(t, tb)
		out := filepath.Join("..", "..", "docs", "dashboard-phone-dark.png")
		is.NoErr(os.WriteFile(out, png, 0o644)) // write the phone screenshot
	}
	is.Equal(tb.consoleErrors(), []string(nil)) // no console errors
}

// TestDashboardStripShowsHealthAndForeignListeners lets the real watchdog
// find a service that is alive but does not listen (unhealthy) and a
// listener the ledger did not hand out (foreign): the strip colours both
// ports so, and the unhealthy port's page marks the change with its reason.
func TestDashboardStripShowsHealthAndForeignListeners(t *testing.T) {
	is := is.New(t)
	d := startDaemon(t, t.TempDir(), "--interval", "100ms", "--start-grace", "1ms", "--failures", "1")
	quiet := exec.Command("sleep", "60") // alive, never listening
	is.NoErr(quiet.Start())
	t.Cleanup(func() { _ = quiet.Process.Kill(); _ = quiet.Wait() })
	sick := d.allocate(t, "quiet", "--pid", strconv.Itoa(quiet.Process.Pid))
	ln, err := net.Listen("tcp", "127.0.0.1:31190") // in webRange, not handed out
	is.NoErr(err)
	t.Cleanup(func() { ln.Close() })
	testbin.WaitFor(t, "the watchdog finds both", func() bool {
		st := d.status(t, "")
		unhealthy := false
		for _, a := range st.PortManager.Allocations {
			unhealthy = unhealthy || a.Port == sick && a.HealthStatus == ledger.HealthUnhealthy
		}
		foreign := false
		for _, c := range st.PortManager.Conflicts {
			foreign = foreign || c.Port == 31190
		}
		return unhealthy && foreign
	})

	tb := newTab(t, 60*time.Second)
	tb.open(t, dashboardURL(t, d))
	class := func(port int) string {
		return evalJS[string](t, tb, fmt.Sprintf(`document.querySelector('#strip rect[data-port="%d"]').getAttribute("class")`, port))
	}
	is.Equal(class(sick), "unhealthy") // the strip shows the unhealthy holder
	is.Equal(class(31190), "foreign")  // and the foreign listener
	is.Equal(class(31191), "free")     // and a free port

	tb.run(t, "open the port's page", chromedp.Navigate(d.base+"/#/port/"+strconv.Itoa(sick)))
	tb.waitJS(t, "the port page is drawn", `document.body.dataset.port === "`+strconv.Itoa(sick)+`"`, 5*time.Second)
	marks := evalJS[[]string](t, tb, `[...document.querySelectorAll("#timeline circle.unhealthy title")].map(t => t.textContent)`)
	is.True(len(marks) >= 1)                                       // the health change is marked
	is.True(strings.Contains(marks[0], "→ unhealthy"))             // with the state
	is.True(strings.Contains(marks[0], "nothing listens on port")) // and the watchdog's reason
	is.Equal(tb.consoleErrors(), []string(nil))                    // no console errors
}
