package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/portledger/portledger/httpapi"
	"github.com/portledger/portledger/ledger"
)

// The daemon's TCP address, in the data directory while it serves: where the
// OS cannot say who listens on a unix socket (no peer credentials: Windows),
// the CLI reaches the daemon over loopback TCP with the token instead.

// addrFile is the path of the file that holds the daemon's TCP address.
func addrFile(layout ledger.Layout) string { return filepath.Join(layout.Dir, "ledger.addr") }

// writeAddrFile records addr for the CLI (mode 0600, replaced atomically)
// and returns the function that removes it.
func writeAddrFile(layout ledger.Layout, addr string) (func(), error) {
	path := addrFile(layout)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return func() { os.Remove(path) }, nil
}

// tcpClient returns a client of the daemon at the address its data
// directory records, with the token given or the directory's token file,
// or nil when no daemon answers there.
func tcpClient(ctx context.Context, layout ledger.Layout, token string) (*httpapi.Client, error) {
	f, err := os.OpenFile(addrFile(layout), os.O_RDONLY|oNoFollow, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, 256))
	f.Close()
	if err != nil {
		return nil, err
	}
	addr, err := loopbackOf(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addrFile(layout), err)
	}
	if token == "" {
		if token, err = readToken(layout.Token()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	cl := httpapi.NewClient("http://"+addr, token)
	if cl.Ping(ctx) != nil {
		return nil, nil // a file left by a daemon that was killed
	}
	return cl, nil
}

// loopbackOf returns the loopback address to reach a daemon that listens on
// addr: addr itself on a loopback host, 127.0.0.1 (or [::1]) and its port on
// a wildcard one. Any other host is refused: the token goes to this machine
// only.
func loopbackOf(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not a daemon address", addr)
	}
	ip := net.ParseIP(host)
	switch {
	case ledger.IsLoopbackHost(host):
		return addr, nil
	case host == "" || (ip != nil && ip.IsUnspecified() && ip.To4() != nil):
		return net.JoinHostPort("127.0.0.1", port), nil
	case ip != nil && ip.IsUnspecified():
		return net.JoinHostPort("::1", port), nil
	}
	return "", fmt.Errorf("the daemon's address %s is not on this machine's loopback: not sending it the token", addr)
}
