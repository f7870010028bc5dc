//go:build unix

package main

import (
	"errors"
	"io/fs"
	"syscall"
)

// permBits says that mode bits tell who may read and write a file.
const permBits = true

// oNoFollow makes an open fail on a symbolic link.
const oNoFollow = syscall.O_NOFOLLOW

// fileUID returns the uid that owns fi.
func fileUID(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// processGone reports whether no process has pid.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// peerCredentials says that the kernel names the process on the other end
// of a unix socket (SO_PEERCRED, LOCAL_PEERCRED), so the CLI may trust the
// daemon's socket.
const peerCredentials = true
