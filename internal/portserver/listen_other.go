//go:build !linux && !windows

package portserver

import (
	"fmt"
	"strings"
)

// platformSupport refuses an @name: the abstract namespace is Linux's; a
// socket path works.
func platformSupport(addr string) error {
	if strings.HasPrefix(addr, "@") {
		return fmt.Errorf("portserver address %q: an @name is Linux's abstract namespace; give a socket path on this system", addr)
	}
	return nil
}
