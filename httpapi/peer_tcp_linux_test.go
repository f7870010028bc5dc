package httpapi

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

func TestLoopbackPeerUIDNamesTheListenersOwner(t *testing.T) {
	is := is.New(t)
	for _, network := range []string{"tcp4", "tcp6"} {
		addr := "127.0.0.1:0"
		if network == "tcp6" {
			addr = "[::1]:0"
		}
		l, err := net.Listen(network, addr)
		if err != nil {
			t.Logf("%s: %v", network, err) // a machine without IPv6
			continue
		}
		c, err := net.Dial(network, l.Addr().String())
		is.NoErr(err)
		uid, ok := loopbackPeerUID(c)
		is.True(ok)                // the server's side is listed (%s)
		is.Equal(uid, os.Getuid()) // as this user's
		is.NoErr(c.Close())
		is.NoErr(l.Close())
	}
}

// fakeTCPDaemon listens on a loopback port, prints it, accepts one
// connection and prints how many bytes it received.
const fakeTCPDaemon = `
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
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

// TestClientKeepsItsTokenFromAnotherUsersListener: a process of another
// user that took the daemon's TCP port (while the daemon was down, say)
// is refused before the token is sent.
func TestClientKeepsItsTokenFromAnotherUsersListener(t *testing.T) {
	needRootAndPython(t)
	is := is.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, systemPython, "-c", fakeTCPDaemon)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Dir = "/"
	out, err := cmd.StdoutPipe()
	is.NoErr(err)
	is.NoErr(cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	r := bufio.NewReader(out)
	port, err := r.ReadString('\n')
	is.NoErr(err)

	_, err = NewClient("http://127.0.0.1:"+strings.TrimSpace(port), "secret-token").Allocate(context.Background(), ledger.AllocateRequest{ServiceName: "api"})
	is.True(errors.Is(err, ErrUntrustedDaemon))                 // refused: %v
	is.True(strings.Contains(err.Error(), "runs as uid 65534")) // naming who listens
	line, err := r.ReadString('\n')
	is.NoErr(err)
	is.Equal(strings.TrimSpace(line), "0") // the impostor received nothing
}
