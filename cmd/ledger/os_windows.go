package main

import (
	"io/fs"
	"os"
)

// checkOwner accepts dir: Windows keeps who may write in a directory in its
// ACL, not in mode bits, and the runtime directory lies in the user's own
// profile (%TEMP%), which other users cannot write.
func checkOwner(string, fs.FileInfo) error { return nil }

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
