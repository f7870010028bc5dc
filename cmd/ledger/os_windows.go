package main

import (
	"io/fs"
	"os"
)

// permBits is false: Windows keeps who may read and write a file in its
// ACL, and Go reports synthetic mode bits (0666, 0777 for a directory).
// The data directory's default (%LOCALAPPDATA%) and the runtime directory
// (%TEMP%) lie in the user's profile, which other users cannot open.
const permBits = false

// oNoFollow is 0: Windows has no O_NOFOLLOW; making a link there needs a
// privilege ordinary users lack.
const oNoFollow = 0

// fileUID has no answer on Windows: files have owner SIDs, not uids.
func fileUID(fs.FileInfo) (int, bool) { return 0, false }

// processGone reports whether no process has pid: on Windows FindProcess
// opens the process and fails when there is none.
func processGone(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	p.Release()
	return false
}

// peerCredentials is false: Windows' AF_UNIX does not say who listens, so
// the CLI reaches the daemon over loopback TCP with the token.
const peerCredentials = false
