//go:build unix

package watchdog

import "golang.org/x/sys/unix"

// ledBy reports whether leader leads the process group or the session of
// pid.
func ledBy(pid, leader int) bool {
	if pg, err := unix.Getpgid(pid); err == nil && pg == leader {
		return true
	}
	sid, err := unix.Getsid(pid)
	return err == nil && sid == leader
}
