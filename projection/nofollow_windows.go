package projection

import (
	"errors"
	"io/fs"
	"os"
)

// openFileNoFollow refuses path if it is a symbolic link (or another
// reparse point Go reports as irregular), then opens it. Windows has no
// O_NOFOLLOW; creating a link there needs a privilege that ordinary users
// lack, so the window between the check and the open is narrow and small.
func openFileNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err == nil && fi.Mode()&(fs.ModeSymlink|fs.ModeIrregular) != 0 {
		return nil, errSymlink
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return os.OpenFile(path, flag, perm)
}
