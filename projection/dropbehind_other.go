//go:build !linux

package projection

import "os"

// startWriteback does nothing where the kernel takes no such advice: the
// page cache writes the catch-up back as it does any file (dropbehind.go).
func startWriteback(*os.File, int64, int64) {}

// dropWritten does nothing where the kernel takes no such advice.
func dropWritten(*os.File, int64, int64) {}
