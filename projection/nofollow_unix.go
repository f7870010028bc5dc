//go:build unix

package projection

import (
	"errors"
	"os"
	"syscall"
)

// openFileNoFollow opens path with O_NOFOLLOW: the kernel refuses a link
// (ELOOP), with no window between a check and the open.
func openFileNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
	if errors.Is(err, syscall.ELOOP) {
		return nil, errSymlink
	}
	return f, err
}
