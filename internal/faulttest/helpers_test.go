package faulttest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portledger/portledger/internal/testbin"
)

// testRange keeps these tests' ports away from other packages' tests.
const testRange = "28500-28999"

// bins builds the real binary once for all the tests.
var bins testbin.Binaries

func TestMain(m *testing.M) {
	code := m.Run()
	_ = bins.Remove()
	os.Exit(code)
}

// ledgerCmd returns the real binary set up for a data directory, with none
// of the developer's LEDGER_* settings.
func ledgerCmd(t testing.TB, data string, args ...string) *exec.Cmd {
	t.Helper()
	return bins.Command(t, data, testRange, args...)
}

// result is what one run of the binary printed and its exit code.
type result struct {
	out, err string
	code     int
}

// run runs the binary to the end, at most testbin.RunTimeout.
func run(t testing.TB, data string, args ...string) result {
	t.Helper()
	out, errOut, code := testbin.Run(t, ledgerCmd(t, data, args...))
	return result{out: out, err: errOut, code: code}
}

// daemon is a running `ledger serve` on a TCP address of its own, and the
// bearer token it serves there: --token's, else the data directory's token
// file.
type daemon struct {
	*testbin.Daemon
	token string
}

// startDaemon starts `ledger serve` on data with a TCP address of its own
// and waits until /healthz answers. Cleanup stops it with SIGTERM.
func startDaemon(t testing.TB, data string, flags ...string) *daemon {
	t.Helper()
	d := bins.Serve(t, data, testRange, testbin.FreeAddr(t), append([]string{"--interval", "1h"}, flags...)...)
	return &daemon{Daemon: d, token: d.Token(t)}
}

// authorize adds the daemon's token to req and, when it has a body, the
// JSON content type.
func (d *daemon) authorize(req *http.Request) *http.Request {
	req.Header.Set("Authorization", "Bearer "+d.token)
	if req.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// stop ends the daemon with SIGTERM and waits for it (once): it must exit 0.
func (d *daemon) stop(t testing.TB) {
	t.Helper()
	if d.Exited() {
		return
	}
	if code, sig := d.Stop(t, syscall.SIGTERM); code != 0 || sig != 0 {
		t.Errorf("daemon: exit %d (signal %v)\n%s", code, sig, d.Stderr)
	}
}

// url returns the daemon's URL of path.
func (d *daemon) url(path string) string { return "http://" + d.Addr + path }

// call sends one request to the daemon and returns the status and the body.
func call(t testing.TB, method, url, body, token string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// decodeError reads an error answer; ok is false when b is not one.
func decodeError(b []byte) (errorBody, bool) {
	var e errorBody
	if err := json.Unmarshal(b, &e); err != nil {
		return e, false
	}
	return e, e.Error != "" && e.Code != ""
}

// waitFor polls cond until it holds or testbin.WaitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testbin.WaitFor(t, what, cond)
}

// fileSum returns the SHA-256 of a file's bytes.
func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// mountTmpfs mounts a tmpfs of the given size (e.g. "2m") on a new folder
// and unmounts it in Cleanup. It skips the test when mounting is refused.
func mountTmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("mount", "-o", "remount,rw", dir).Run()
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			// A daemon that failed to stop may still hold it: lazily.
			_ = exec.Command("umount", "-l", dir).Run()
			t.Logf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// remount changes the options of a mount (e.g. "ro" or "rw").
func remount(t testing.TB, dir, opt string) error {
	t.Helper()
	out, err := exec.Command("mount", "-o", "remount,"+opt, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("remount %s %s: %v %s", opt, dir, err, out)
	}
	return nil
}

// jsonUnmarshal is json.Unmarshal, named for the load tests.
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
