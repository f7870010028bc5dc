package faulttest

import (
	"syscall"
	"testing"
	"unsafe"
)

// setFileSizeLimit sets RLIMIT_FSIZE of a running process (prlimit(2)),
// the real limit a quota or a full disk puts on a daemon's file growth.
func setFileSizeLimit(t testing.TB, pid int, limit uint64) {
	t.Helper()
	// Only the soft limit moves: raising a hard limit back needs
	// CAP_SYS_RESOURCE, which a container's root may lack.
	lim := syscall.Rlimit{Cur: limit, Max: ^uint64(0)}
	if limit == 0 {
		lim.Cur = ^uint64(0)
	}
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE,
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0); errno != 0 {
		t.Fatalf("prlimit: %v", errno)
	}
}
