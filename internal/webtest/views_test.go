package webtest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// stripClass is the JavaScript for the class of port's cell in the strip.
func stripClass(port int) string {
	return fmt.Sprintf(`document.querySelector('#strip rect[data-port="%d"]').getAttribute("class")`, port)
}

// TestDashboardDateFieldShowsThePast types a moment between two
// allocations into the date-time field: the table and the strip show the
// registry of that moment, as `ledger status --at` does, and the slider
// moves to it.
func TestDashboardDateFieldShowsThePast(t *testing.T) {
	is := is.New(t)
	d := startDaemon(t, t.TempDir(), "--interval", "1h")
	first := d.allocate(t, "first")
	// The field takes whole seconds: the next whole second after the first
	// allocation comes before the second one.
	time.Sleep(2200 * time.Millisecond)
	second := d.allocate(t, "second")
	var at = map[int]time.Time{}
	for _, e := range d.history(t) {
		if e.Type == ledger.EventAllocated {
			at[e.Port] = e.At
		}
	}
	moment := at[first].Truncate(time.Second).Add(time.Second)
	is.True(moment.After(at[first]) && moment.Before(at[second])) // the moment lies between the two

	tb := newTab(t, 60*time.Second)
	tb.open(t, dashboardURL(t, d))
	is.Equal(rowPorts(t, tb), []int{first, second}) // live: both
	is.Equal(evalJS[string](t, tb, stripClass(second)), "held")

	// Type the moment, in the browser's local time, as a person would.
	evalJS[string](t, tb, fmt.Sprintf(`(() => {
		const d = new Date(%d), p = (n) => String(n).padStart(2, "0");
		const f = document.getElementById("when");
		f.value = d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
		f.dispatchEvent(new Event("change", {bubbles: true}));
		return f.value;
	})()`, moment.UnixMilli()))
	tb.waitJS(t, "the page shows the past", `document.body.dataset.mode === "past" && !!document.body.dataset.at`, 5*time.Second)
	tb.waitJS(t, "the past registry is drawn", `!(`+hasRow(second)+`)`, 5*time.Second)
	shownAt, err := time.Parse(time.RFC3339Nano, evalJS[string](t, tb, `document.body.dataset.at`))
	is.NoErr(err)                  // the page says which moment it shows
	is.True(shownAt.Equal(moment)) // the typed one
	st := d.status(t, shownAt.Format(time.RFC3339Nano))
	var want []int
	for _, a := range st.PortManager.Allocations {
		want = append(want, a.Port)
	}
	slices.Sort(want)
	is.Equal(want, []int{first})                                // `ledger status --at` of that moment
	is.Equal(rowPorts(t, tb), want)                             // is what the table shows
	is.Equal(evalJS[string](t, tb, stripClass(first)), "held")  // the strip too: the first held
	is.Equal(evalJS[string](t, tb, stripClass(second)), "free") // the second not yet
	slider := evalJS[int](t, tb, `Number(document.getElementById("slider").value)`)
	is.True(slider < 1000)                                                                                // the slider left "now"
	is.True(evalJS[bool](t, tb, `!document.querySelector('#alloc-rows button.release:not([disabled])')`)) // no release in the past

	// The slider dragged back to its end is "now": the page is live again.
	evalJS[string](t, tb, `(() => {
		const s = document.getElementById("slider");
		s.value = s.max;
		s.dispatchEvent(new Event("input", {bubbles: true}));
		return s.value;
	})()`)
	tb.waitJS(t, "back to live", `document.body.dataset.mode === "live" && `+hasRow(second), 5*time.Second)
	is.Equal(evalJS[string](t, tb, stripClass(second)), "held") // the strip is live too
	is.Equal(tb.consoleErrors(), []string(nil))                 // no console errors
}

// TestDashboardShowsTheWatchdog checks the header's watchdog line against
// the daemon's own watchdog status: running, its interval, and a last sweep
// that moves on while the page stays open.
func TestDashboardShowsTheWatchdog(t *testing.T) {
	is := is.New(t)
	d := startDaemon(t, t.TempDir(), "--interval", "2s")
	tb := newTab(t, 60*time.Second)
	tb.open(t, dashboardURL(t, d))
	tb.waitJS(t, "the watchdog line shows a sweep", `document.getElementById("watchdog").textContent.includes("last sweep")`, 10*time.Second)
	line := evalJS[string](t, tb, `document.getElementById("watchdog").textContent`)
	is.True(strings.Contains(line, "watchdog every 2.0 s"))                                        // running, with its interval
	is.Equal(evalJS[string](t, tb, `document.getElementById("watchdog").dataset.running`), "true") // marked running
	sweeps := func() int {
		s := evalJS[string](t, tb, `(/(\d+) sweeps/.exec(document.getElementById("watchdog").textContent) || [])[1] || "-1"`)
		n, err := strconv.Atoi(s)
		is.NoErr(err)
		return n
	}
	is.True(sweeps() >= 1) // the sweeps so far
	// The line follows the watchdog, not a number read once: an event
	// (here an allocation) makes the page read the status again, and the
	// count is the daemon's.
	before := sweeps()
	time.Sleep(2500 * time.Millisecond) // at least one more sweep
	port := d.allocate(t, "poke")
	tb.waitJS(t, "the allocation appears", hasRow(port), 5*time.Second)
	tb.waitJS(t, "the sweep count moves on", fmt.Sprintf(`Number((/(\d+) sweeps/.exec(document.getElementById("watchdog").textContent) || [])[1]) > %d`, before), 5*time.Second)
	is.Equal(tb.consoleErrors(), []string(nil)) // no console errors
}

// TestDashboardUsageChart draws usage per service: one bar per service
// with its held time, allocations and releases, the releases by reason on
// hover; another window redraws it.
func TestDashboardUsageChart(t *testing.T) {
	is := is.New(t)
	d := startDaemon(t, t.TempDir(), "--interval", "1h")
	p := d.allocate(t, "alpha")
	d.ledger(t, "release", strconv.Itoa(p), "--reason", "tests finished")
	d.allocate(t, "alpha")
	q := d.allocate(t, "beta")
	d.ledger(t, "release", strconv.Itoa(q), "--reason", "moved away")

	tb := newTab(t, 60*time.Second)
	tb.open(t, dashboardURL(t, d))
	tb.waitJS(t, "usage drawn", `document.querySelectorAll("#usage rect[data-service]").length === 2`, 5*time.Second)
	bars := evalJS[[]string](t, tb, `[...document.querySelectorAll("#usage rect[data-service]")].map(r => r.dataset.service)`)
	slices.Sort(bars)
	is.Equal(bars, []string{"alpha", "beta"}) // a bar per service
	tip := func(service string) string {
		return evalJS[string](t, tb, `document.querySelector('#usage rect[data-service="`+service+`"] title').textContent`)
	}
	is.True(strings.Contains(tip("alpha"), "2 allocations"))     // allocations
	is.True(strings.Contains(tip("alpha"), "tests finished: 1")) // releases by reason, on hover
	is.True(strings.Contains(tip("alpha"), "1 held now"))        // what is still held
	is.True(strings.Contains(tip("beta"), "moved away: 1"))      // another reason
	labels := evalJS[string](t, tb, `document.getElementById("usage").textContent`)
	is.True(strings.Contains(labels, "2 alloc"))    // the allocations, on the chart
	is.True(strings.Contains(labels, "1 released")) // and the releases

	evalJS[string](t, tb, `(() => {
		document.getElementById("usage").replaceChildren();
		const w = document.getElementById("window");
		w.value = "1h";
		w.dispatchEvent(new Event("change", {bubbles: true}));
		return w.value;
	})()`)
	tb.waitJS(t, "usage redrawn for the last hour", `document.querySelectorAll("#usage rect[data-service]").length === 2`, 5*time.Second)
	is.Equal(tb.consoleErrors(), []string(nil)) // no console errors
}

// TestDashboardReleaseAsksFirst: the release button opens a confirmation
// that names the port; Cancel and an empty reason release nothing; a typed
// reason releases.
func TestDashboardReleaseAsksFirst(t *testing.T) {
	is := is.New(t)
	d := startDaemon(t, t.TempDir(), "--interval", "1h")
	port := d.allocate(t, "keep-me")
	tb := newTab(t, 60*time.Second)
	tb.open(t, dashboardURL(t, d))
	button := fmt.Sprintf(`#alloc-rows tr[data-port="%d"] button.release`, port)
	released := func() bool {
		evs := d.historyPort(t, port)
		return evs[len(evs)-1].Type == ledger.EventReleased
	}

	// The button is pressed from the page's script: a live refresh redraws
	// the rows, so a node looked up first may be gone when clicked.
	press := chromedp.Evaluate[chromedp.Void](`document.querySelector('` + button + `').click()`)
	tb.run(t, "press release, then Cancel",
		press,
		chromedp.WaitVisible(chromedp.CSS("#release-reason")))
	is.Equal(evalJS[string](t, tb, `document.getElementById("release-port").textContent`), strconv.Itoa(port)) // the dialog names the port
	tb.run(t, "cancel", chromedp.Click(chromedp.CSS("#release-cancel")))
	tb.waitJS(t, "the dialog closes", `!document.getElementById("release-dialog").open`, 5*time.Second)

	tb.run(t, "press release, confirm without a reason",
		press,
		chromedp.WaitVisible(chromedp.CSS("#release-reason")),
		chromedp.Click(chromedp.CSS("#release-ok")))
	is.True(evalJS[bool](t, tb, `document.getElementById("release-dialog").open`)) // a reason is asked for
	is.True(!released())                                                           // nothing released so far
	is.True(evalJS[bool](t, tb, hasRow(port)))                                     // still in the table

	tb.run(t, "type a reason and confirm",
		chromedp.SendKeys(chromedp.CSS("#release-reason"), "asked first"),
		chromedp.Click(chromedp.CSS("#release-ok")))
	tb.waitJS(t, "the row disappears", "!("+hasRow(port)+")", 5*time.Second)
	is.True(released()) // released
	evs := d.historyPort(t, port)
	is.Equal(evs[len(evs)-1].Released.Reason, "asked first") // with the reason
	is.Equal(tb.consoleErrors(), []string(nil))              // no console errors
}
