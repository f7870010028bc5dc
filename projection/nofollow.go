package projection

import (
	"errors"
	"fmt"
	"os"
)

// errSymlink is what the platform's open reports for a symbolic link.
var errSymlink = errors.New("symbolic link")

// openNoFollow opens a projection file like os.OpenFile, but never through
// a symbolic link: a link put in the data directory would otherwise make
// the daemon append to, truncate or read a file of the link's choosing. A
// link is refused with an error that names it.
func openNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := openFileNoFollow(path, flag, perm)
	if errors.Is(err, errSymlink) {
		return nil, fmt.Errorf("%s is a symbolic link: projection files are never opened through links; remove it", path)
	}
	return f, err
}
