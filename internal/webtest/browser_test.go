package webtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browserNames are the programs tried, in order, for the headless browser.
// CHROMIUM names another one.
var browserNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// browser is the one headless Chromium of the package, started by the first
// test that needs it and shared (one tab per test) to keep the tests fast.
var browser struct {
	once    sync.Once
	ctx     context.Context // the browser's context: tabs are made from it
	cancel  func()
	dataDir string
	err     error
}

// findBrowser returns the path of the browser or an error that says how to
// install one. A missing browser fails the tests: it is never a skip.
func findBrowser() (string, error) {
	names := browserNames
	if p := os.Getenv("CHROMIUM"); p != "" {
		names = []string{p}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no headless browser found (tried %s): the dashboard's browser tests need Chromium; install it with `apt-get install chromium` (Debian/Ubuntu) or set CHROMIUM to its path",
		strings.Join(names, ", "))
}

// startBrowser starts the shared browser. The flags keep it off the
// network: no first-run pages, no background fetches, no component
// updates, no sync, no QUIC, so that it never tries to reach Google.
func startBrowser() {
	path, err := findBrowser()
	if err != nil {
		browser.err = err
		return
	}
	dir, err := os.MkdirTemp("", "ledger-webtest-chromium-")
	if err != nil {
		browser.err = err
		return
	}
	browser.dataDir = dir
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	// The first Do starts the browser and binds its life to bctx, which
	// has no deadline; a browser that cannot start fails it.
	if err := chromedp.Do(bctx); err != nil {
		bcancel()
		acancel()
		browser.err = fmt.Errorf("start %s: %w", path, err)
		return
	}
	browser.ctx = bctx
	browser.cancel = func() { bcancel(); acancel() }
}

// closeBrowser stops the package's browser, if one was started.
func closeBrowser() {
	if browser.cancel != nil {
		browser.cancel()
	}
	if browser.dataDir != "" {
		_ = os.RemoveAll(browser.dataDir)
	}
}

// tab is one page of the shared browser, with what its page logged.
type tab struct {
	ctx     context.Context // the tab's own: no deadline
	timeout time.Duration   // bound of each operation

	mu     sync.Mutex
	errors []string // console errors, exceptions and failed loads
}

// newTab opens a tab in the shared browser, starting the browser on first
// use; the tab closes when the test ends. Every operation on it is bounded
// by timeout.
func newTab(tb testing.TB, timeout time.Duration) *tab {
	tb.Helper()
	browser.once.Do(startBrowser)
	if browser.err != nil {
		tb.Fatalf("browser: %v", browser.err)
	}
	// A browser context of its own: its own cookies, so that one test's
	// session does not reach another test's daemon on the same host.
	ctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithNewBrowserContext())
	tb.Cleanup(cancel)
	t := &tab{ctx: ctx, timeout: timeout}
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		tb.Fatalf("open a tab: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				t.record("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			t.record("exception: " + msg)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				t.record("log: " + ev.Entry.Text + " " + ev.Entry.URL)
			}
		}
	})
	if err != nil {
		tb.Fatalf("listen to the tab: %v", err)
	}
	ectx, cancelE := context.WithTimeout(ctx, timeout)
	defer cancelE()
	if _, err := chromedp.Call(ectx, cdplog.Enable, cdp.Empty{}); err != nil {
		tb.Fatalf("enable the log: %v", err)
	}
	if _, err := chromedp.Call(ectx, runtime.Enable, cdp.Empty{}); err != nil {
		tb.Fatalf("enable the runtime: %v", err)
	}
	return t
}

func (t *tab) record(s string) {
	t.mu.Lock()
	t.errors = append(t.errors, s)
	t.mu.Unlock()
}

// consoleErrors returns what the page logged as errors so far.
func (t *tab) consoleErrors() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.errors...)
}

// run runs steps in the tab within the tab's timeout and fails tb on error.
func (t *tab) run(tb testing.TB, what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.Fatalf("%s: %v (page errors: %v)", what, err, t.consoleErrors())
	}
}

// evalJS evaluates a JavaScript expression in the tab into a T.
func evalJS[T any](tb testing.TB, t *tab, expr string) T {
	tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.Fatalf("evaluate %s: %v (page errors: %v)", expr, err, t.consoleErrors())
	}
	return v
}

// waitJS polls a JavaScript expression until it is true, within limit.
func (t *tab) waitJS(tb testing.TB, what, expr string, limit time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, limit+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(limit)))
	if err != nil {
		dump, _ := chromedp.Run(t.ctx, chromedp.Evaluate[string](`(document.getElementById("alloc-rows") || {}).innerText || ""`))
		tb.Fatalf("%s: not within %s: %v\npage errors: %v\ntable: %s", what, limit, err, t.consoleErrors(), dump)
	}
}

// open loads url and waits for the page to be ready (its first status read
// and the log's first event).
func (t *tab) open(tb testing.TB, url string) {
	tb.Helper()
	t.run(tb, "navigate to "+url, chromedp.Navigate(url))
	t.waitJS(tb, "the page is ready", `document.body.dataset.ready === "true"`, 10*time.Second)
}

// screenshot takes a PNG of the whole page.
func screenshot(tb testing.TB, t *tab) []byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		tb.Fatalf("screenshot: %v", err)
	}
	return png
}
