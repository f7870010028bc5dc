package portserver

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"
)

// Listen opens the listener for a portserver address as portpicker names
// it in PORTSERVER_ADDRESS: "@name" for a name in Linux's abstract socket
// namespace, else the path of a unix socket. A socket file left by a server
// that is gone is replaced; one that answers is not. A path socket is made
// mode 0600, so only its owner's processes reach it; an abstract name has no
// permissions: every process of the machine's network namespace reaches it,
// as with Google's portserver.
func Listen(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, errors.New("portserver address is empty: want @name or a socket path")
	}
	if err := platformSupport(addr); err != nil {
		return nil, err
	}
	if strings.HasPrefix(addr, "@") {
		if len(addr) == 1 {
			return nil, errors.New("portserver address \"@\": want a name after the @, e.g. @unittest-portserver")
		}
		ln, err := net.Listen("unix", addr)
		if err != nil {
			return nil, fmt.Errorf("portserver: listen on %s: %w", addr, err)
		}
		return ln, nil
	}
	if err := removeStale(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", addr)
	if err != nil {
		return nil, fmt.Errorf("portserver: listen on %s: %w", addr, err)
	}
	if err := os.Chmod(addr, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("portserver: %w", err)
	}
	return ln, nil
}

// removeStale removes a socket file at path that nobody answers on. It
// refuses to touch anything else.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("portserver: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("portserver: %s exists and is not a socket; give another path", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("portserver: another server answers on %s", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("portserver: remove the stale socket: %w", err)
	}
	return nil
}
