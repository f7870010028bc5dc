//go:build unix

package httpapi

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
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

// systemPython is the system's Python, which another user may run (one in
// root's home, such as pyenv's, they may not).
const systemPython = "/usr/bin/python3"

// nobody is the user the socket tests call as: another local user.
const nobody = 65534

// socketCall is a minimal HTTP/1.1 client over a unix socket, in Python,
// so that it can run as another user (the test binary's folder is not
// theirs to read). It prints the status code, a newline and the body.
const socketCall = `
import socket, sys
path, method, target, body = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
head = "%s %s HTTP/1.1\r\nHost: ledger\r\nConnection: close\r\n" % (method, target)
if body:
    head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
s.sendall((head + "\r\n" + body).encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
status = data.split(b" ", 2)[1].decode()
print(status)
print(data.split(b"\r\n\r\n", 1)[1].decode())
`

// serveSocket serves e's ledger with cfg's rules on a unix socket that
// other users can reach, as an operator who loosened the modes would: the
// daemon must then still decide by the kernel's word on the caller.
func serveSocket(t *testing.T, e *testEnv, groups []int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ledger-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ledger.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(NewServer(Config{Service: e.svc, Events: e.svc, Token: testToken, WriteGroups: groups, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: e.logs}, nil))}))
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

// callAs sends one request over the socket as the user uid (gid gid) and
// returns the status and body.
func callAs(t *testing.T, uid, gid int, sock, method, target, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, systemPython, "-c", socketCall, sock, method, target, body)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 as uid %d: %v: %s", uid, err, out)
	}
	status, rest, _ := strings.Cut(string(out), "\n")
	n, err := strconv.Atoi(status)
	if err != nil {
		t.Fatalf("python3 as uid %d: %q", uid, out)
	}
	return n, rest
}

// needRootAndPython skips unless the test can run a process as another
// user (root) with Python.
func needRootAndPython(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("calling as another user needs root")
	}
	if _, err := os.Stat(systemPython); err != nil {
		t.Skip("python3 is not installed")
	}
}

// TestSocketAccessByUser checks the unix socket's rules with real
// processes of another user: they may read but not write, unless the
// operator allowed their group; the import stays the owner's; the owner
// writes and is recorded by uid and pid. Refusals leave the log as it was.
func TestSocketAccessByUser(t *testing.T) {
	needRootAndPython(t)
	e := newEnv(t)
	held := e.allocate(t, "api")
	closed := serveSocket(t, e, nil)
	open := serveSocket(t, e, []int{nobody})
	port := strconv.Itoa(held.Port)
	tests := []struct {
		name                 string
		sock                 string
		method, target, body string
		want                 int
		code                 string
	}{
		{"another user reads the status", closed, "GET", "/api/ports/status", "", 200, ""},
		{"another user reads the history", closed, "GET", "/api/ports/history", "", 200, ""},
		{"another user allocates", closed, "POST", "/api/ports/allocations", `{"service_name":"intruder"}`, 403, ledger.EFORBIDDEN},
		{"another user releases the owner's port", closed, "DELETE", "/api/ports/allocations/" + port, "", 403, ledger.EFORBIDDEN},
		{"another user changes the range", closed, "PUT", "/api/ports/range", `{"port_range":"27000-27001"}`, 403, ledger.EFORBIDDEN},
		{"another user imports", closed, "POST", "/api/ports/import", `{"events":[]}`, 403, ledger.EFORBIDDEN},
		{"an allowed group's member imports", open, "POST", "/api/ports/import", `{"events":[]}`, 403, ledger.EFORBIDDEN},
		{"an allowed group's member allocates", open, "POST", "/api/ports/allocations", `{"service_name":"friend"}`, 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			before := e.state(t)
			status, body := callAs(t, nobody, nobody, tt.sock, tt.method, tt.target, tt.body)
			if tt.code == "" {
				is.Equal(status, tt.want) // allowed: %s
				return
			}
			checkError(t, status, decodeObject(t, []byte(body)), tt.want, tt.code)
			is.Equal(e.state(t), before) // the log is unchanged
		})
	}

	t.Run("the group member's write names them", func(t *testing.T) {
		is := is.New(t)
		evs, err := e.svc.History(context.Background(), ledger.HistoryQuery{Service: "friend"})
		is.NoErr(err)
		is.Equal(len(evs), 1) // the allocation
		a := evs[0].Actor
		is.True(a != nil)                          // carries its actor
		is.Equal(a.Via, ledger.ViaSocket)          // over the socket
		is.Equal(a.UID, nobody)                    // by the kernel's uid of the caller
		is.True(a.PID > 0 && a.PID != os.Getpid()) // and the caller's pid
	})

	t.Run("the owner writes and imports", func(t *testing.T) {
		is := is.New(t)
		c := NewSocketClient(closed, "")
		a, err := c.Allocate(context.Background(), ledger.AllocateRequest{ServiceName: "owner"})
		is.NoErr(err) // the owner allocates
		_, err = c.Import(context.Background(), []ledger.Event{})
		is.NoErr(err) // and may import
		evs, err := e.svc.History(context.Background(), ledger.HistoryQuery{Port: a.Port})
		is.NoErr(err)
		is.Equal(*evs[len(evs)-1].Actor, ledger.Actor{Via: ledger.ViaSocket, UID: os.Getuid(), PID: os.Getpid()}) // recorded as this process
	})
}

// fakeDaemon listens on a unix socket, accepts one connection and prints
// how many bytes it received before the peer closed it.
const fakeDaemon = `
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
`

// TestSocketClientRefusesAnotherUsersDaemon puts a listener of another
// user where the daemon's socket should be: the client asks the kernel who
// listens (SO_PEERCRED) and sends it nothing.
func TestSocketClientRefusesAnotherUsersDaemon(t *testing.T) {
	needRootAndPython(t)
	is := is.New(t)
	dir, err := os.MkdirTemp("", "ledger-fake-")
	is.NoErr(err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	is.NoErr(os.Chmod(dir, 0o777))
	sock := filepath.Join(dir, "ledger.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, systemPython, "-c", fakeDaemon, sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Dir = "/"
	out, err := cmd.StdoutPipe()
	is.NoErr(err)
	is.NoErr(cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	is.NoErr(err)
	is.Equal(strings.TrimSpace(line), "ready") // the impostor listens

	_, err = NewSocketClient(sock, "").Allocate(context.Background(), ledger.AllocateRequest{ServiceName: "api", Purpose: "secret plans"})
	is.True(errors.Is(err, ErrUntrustedDaemon))                 // refused: %v
	is.True(strings.Contains(err.Error(), "runs as uid 65534")) // naming who listens
	line, err = r.ReadString('\n')
	is.NoErr(err)
	is.Equal(strings.TrimSpace(line), "0") // the impostor received nothing
}
