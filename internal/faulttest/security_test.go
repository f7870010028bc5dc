//go:build unix

package faulttest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// history returns the daemon's whole log as the CLI shows it, to compare
// before and after an attack.
func history(t *testing.T, data string) string {
	t.Helper()
	r := run(t, data, "history", "--json")
	if r.code != 0 {
		t.Fatalf("history: %s", r.err)
	}
	return r.out
}

// TestDaemonSecurity attacks the real daemon (`ledger serve`, its token
// made at the first start) the ways issue 11 lists, as requests: a web
// page's cross-site writes, a rebinding page, a body that is not JSON, a
// caller without the token or with a wrong one, an import without the
// token, pids that cannot be a service. Each is refused with its status and
// code, and the log is the same afterwards. Then what must keep working
// does, and the writes name their actor.
func TestDaemonSecurity(t *testing.T) {
	data := t.TempDir()
	d := startDaemon(t, data)
	status, b := call(t, "POST", d.url("/api/ports/allocations"), `{"service_name":"held"}`, d.token)
	if status != http.StatusCreated {
		t.Fatalf("allocate with the token: %d %s", status, b)
	}
	var held struct{ Port int }
	if err := json.Unmarshal(b, &held); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(held.Port)
	_, portOfAPI, _ := strings.Cut(d.Addr, ":")
	kthread := "2" // kthreadd, when this pid namespace shows kernel threads
	if b, err := os.ReadFile("/proc/2/stat"); err != nil || !strings.Contains(string(b), "(kthreadd)") {
		kthread = ""
	}
	daemonPID := strconv.Itoa(d.Pid())

	cross := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
	rebound := map[string]string{"Origin": "http://evil.example:" + portOfAPI, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
	tests := []struct {
		name         string
		method, path string
		host         string
		headers      map[string]string
		contentType  string // "" sends application/json with a body
		body         string
		token        string // "" sends none
		status       int
		code         string
		skip         bool
	}{
		// item 1: browsers
		{name: "cross-site form allocates", method: "POST", path: "/api/ports/allocations", headers: cross, contentType: "text/plain", body: `{"service_name":"csrf"}`, status: 403, code: "forbidden"},
		{name: "cross-site page registers a pid", method: "POST", path: "/api/ports/allocations/" + port + "/pid", headers: cross, contentType: "text/plain", body: `{"pid":1}`, status: 403, code: "forbidden"},
		{name: "cross-site page imports", method: "POST", path: "/api/ports/import", headers: cross, contentType: "text/plain", body: `{"events":[]}`, status: 403, code: "forbidden"},
		{name: "cross-site page releases with a stolen token", method: "DELETE", path: "/api/ports/allocations/" + port, headers: cross, token: d.token, status: 403, code: "forbidden"},
		{name: "rebinding page reads", method: "GET", path: "/api/ports/allocations", host: "evil.example:" + portOfAPI, headers: rebound, status: 421, code: "misdirected"},
		{name: "rebinding page releases", method: "DELETE", path: "/api/ports/allocations/" + port, host: "evil.example:" + portOfAPI, headers: rebound, status: 421, code: "misdirected"},
		{name: "text/plain body with the token", method: "POST", path: "/api/ports/allocations", contentType: "text/plain", body: `{"service_name":"plain"}`, token: d.token, status: 415, code: "unsupported_media_type"},
		// item 5: the token
		{name: "allocate without the token", method: "POST", path: "/api/ports/allocations", body: `{"service_name":"intruder","started_by":"alice"}`, status: 401, code: "unauthorized"},
		{name: "release another's port without the token", method: "DELETE", path: "/api/ports/allocations/" + port + "?released_by=alice", status: 401, code: "unauthorized"},
		{name: "register a pid without the token", method: "POST", path: "/api/ports/allocations/" + port + "/pid", body: `{"pid":1}`, status: 401, code: "unauthorized"},
		{name: "change the range without the token", method: "PUT", path: "/api/ports/range", body: `{"port_range":"1-1"}`, status: 401, code: "unauthorized"},
		{name: "import on loopback without the token", method: "POST", path: "/api/ports/import", body: `{"events":[]}`, status: 401, code: "unauthorized"},
		{name: "history without the token", method: "GET", path: "/api/ports/history", status: 401, code: "unauthorized"},
		{name: "event stream without the token", method: "GET", path: "/api/ports/events", status: 401, code: "unauthorized"},
		{name: "allocate with a wrong token", method: "POST", path: "/api/ports/allocations", body: `{"service_name":"intruder"}`, token: "wrong", status: 401, code: "unauthorized"},
		{name: "allocate with the token upper-cased", method: "POST", path: "/api/ports/allocations", body: `{"service_name":"intruder"}`, token: strings.ToUpper(d.token), status: 401, code: "unauthorized", skip: strings.ToUpper(d.token) == d.token},
		// item 8: pids that cannot be a service
		{name: "register a kernel thread", method: "POST", path: "/api/ports/allocations/" + port + "/pid", body: `{"pid":` + kthread + `}`, token: d.token, status: 400, code: "invalid", skip: kthread == ""},
		{name: "register the daemon itself", method: "POST", path: "/api/ports/allocations/" + port + "/pid", body: `{"pid":` + daemonPID + `}`, token: d.token, status: 400, code: "invalid"},
		{name: "allocate with the daemon's pid", method: "POST", path: "/api/ports/allocations", body: `{"service_name":"pinned","pid":` + daemonPID + `}`, token: d.token, status: 400, code: "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("not possible on this machine")
			}
			is := is.New(t)
			before := history(t, data)
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, tt.method, d.url(tt.path), body)
			is.NoErr(err)
			if tt.host != "" {
				req.Host = tt.host
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			if tt.body != "" {
				ct := tt.contentType
				if ct == "" {
					ct = "application/json"
				}
				req.Header.Set("Content-Type", ct)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			is.NoErr(err)
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			is.NoErr(err)
			e, ok := decodeError(raw)
			is.Equal(resp.StatusCode, tt.status) // refused with the status: %s
			is.True(ok)                          // and the JSON error
			is.Equal(e.Code, tt.code)            // and the code
			is.Equal(history(t, data), before)   // the log is unchanged
		})
	}

	t.Run("what keeps working, and who wrote", func(t *testing.T) {
		is := is.New(t)
		status, _ := call(t, "GET", d.url("/api/ports/status"), "", "")
		is.Equal(status, http.StatusOK) // the seed's status is open on loopback
		status, _ = call(t, "GET", d.url("/api/ports/allocations/"+port), "", "")
		is.Equal(status, http.StatusOK) // and one allocation
		status, _ = call(t, "POST", d.url("/api/ports/health-check"), "", "")
		is.Equal(status, http.StatusOK) // and the health-check
		r := run(t, data, "allocate", "--service", "cli")
		is.Equal(r.code, 0) // the CLI writes through the socket without a token: %s
		r = run(t, data, "status", "--addr", d.Addr)
		is.Equal(r.code, 0) // and over TCP it finds the token in the data directory: %s

		var h struct{ Events []ledger.Event }
		is.NoErr(json.Unmarshal([]byte(history(t, data)), &h))
		var viaTCP, viaSocket *ledger.Actor
		for _, ev := range h.Events {
			if ev.Allocated != nil && ev.Allocated.ServiceName == "held" {
				viaTCP = ev.Actor
			}
			if ev.Allocated != nil && ev.Allocated.ServiceName == "cli" {
				viaSocket = ev.Actor
			}
		}
		is.True(viaTCP != nil && viaSocket != nil)                                     // both writes carry an actor
		is.Equal(*viaTCP, ledger.Actor{Via: ledger.ViaTCP, UID: -1, Token: "default"}) // over TCP, the token's name
		is.Equal(viaSocket.Via, ledger.ViaSocket)                                      // over the socket
		is.Equal(viaSocket.UID, os.Getuid())                                           // the caller's uid
		is.True(viaSocket.PID > 0 && viaSocket.PID != d.Pid())                         // and the CLI's pid
		r = run(t, data, "history")
		is.Equal(r.code, 0)
		is.True(strings.Contains(r.out, `actor="token default (tcp)"`))                                               // people see the writer too
		is.True(strings.Contains(r.out, fmt.Sprintf(`actor="uid %d pid %d (socket)"`, viaSocket.UID, viaSocket.PID))) // %s
	})
}

// TestDataDirectoryTrust attacks the CLI and the daemon through the data
// directory (item 7): a directory others may write or another user owns is
// refused before anything is sent or opened; a day file that is a link to
// another file is not followed; a listener of another user on ledger.sock
// receives nothing.
func TestDataDirectoryTrust(t *testing.T) {
	t.Run("a directory others may write", func(t *testing.T) {
		is := is.New(t)
		data := t.TempDir()
		is.NoErr(os.Chmod(data, 0o777))
		r := run(t, data, "allocate", "--service", "api")
		is.Equal(r.code, 1)                           // refused
		is.True(strings.Contains(r.err, "chmod 700")) // naming the fix: %s
		r = run(t, data, "serve", "--addr", "")
		is.Equal(r.code, 1)                           // the daemon refuses it too
		is.True(strings.Contains(r.err, "chmod 700")) // %s
		_, err := os.Stat(ledger.Layout{Dir: data}.DB())
		is.True(os.IsNotExist(err)) // nothing was created
	})

	t.Run("a directory of another user", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("giving a directory away needs root")
		}
		is := is.New(t)
		data := t.TempDir()
		is.NoErr(os.Chown(data, 65534, 65534))
		r := run(t, data, "status")
		is.Equal(r.code, 1)                                    // refused
		is.True(strings.Contains(r.err, "owned by uid 65534")) // naming the owner: %s
	})

	t.Run("a day file that is a link", func(t *testing.T) {
		is := is.New(t)
		data := t.TempDir()
		layout := ledger.Layout{Dir: data}
		is.NoErr(os.MkdirAll(layout.LogsDir(), 0o700))
		victim := filepath.Join(t.TempDir(), "victim")
		is.NoErr(os.WriteFile(victim, []byte("precious\n"), 0o600))
		today := filepath.Join(layout.LogsDir(), "allocations_"+time.Now().UTC().Format("20060102")+".jsonl")
		is.NoErr(os.Symlink(victim, today))
		r := run(t, data, "allocate", "--service", "api")
		is.True(strings.Contains(r.err, "symbolic link")) // the link is named: %s
		b, err := os.ReadFile(victim)
		is.NoErr(err)
		is.Equal(string(b), "precious\n") // and not followed
	})

	t.Run("another user's listener on ledger.sock", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("running a listener as another user needs root")
		}
		if _, err := os.Stat("/usr/bin/python3"); err != nil {
			t.Skip("python3 is not installed")
		}
		is := is.New(t)
		data := t.TempDir()
		r := run(t, data, "status") // the ledger exists, with the test's range
		is.Equal(r.code, 0)         // %s
		// The listener binds in a folder of its own and the socket is then
		// moved into the data directory: what a writable data directory
		// would have let another user do.
		spot, err := os.MkdirTemp("", "ledger-impostor-")
		is.NoErr(err)
		t.Cleanup(func() { os.RemoveAll(spot) })
		is.NoErr(os.Chmod(spot, 0o777))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/usr/bin/python3", "-c", impostor, filepath.Join(spot, "s"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Dir = "/"
		out, err := cmd.StdoutPipe()
		is.NoErr(err)
		is.NoErr(cmd.Start())
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		rd := bufio.NewReader(out)
		line, err := rd.ReadString('\n')
		is.NoErr(err)
		is.Equal(strings.TrimSpace(line), "ready")
		is.NoErr(os.Rename(filepath.Join(spot, "s"), ledger.Layout{Dir: data}.Socket()))

		r = run(t, data, "allocate", "--service", "api", "--purpose", "secret plans")
		is.Equal(r.code, 1)                                   // the CLI refuses the answer
		is.True(strings.Contains(r.err, "runs as uid 65534")) // naming who listens: %s
		line, err = rd.ReadString('\n')
		is.NoErr(err)
		is.Equal(strings.TrimSpace(line), "0") // the listener received nothing
	})
}

// impostor listens on a unix socket, accepts one connection and prints how
// many bytes it received.
var impostor = fmt.Sprint(`
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(10)
n = 0
try:
    while True:
        b = c.recv(65536)
        if not b:
            break
        n += len(b)
except socket.timeout:
    pass
print(n, flush=True)
`)
