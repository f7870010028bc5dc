package commands

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// pfKthread is the PF_KTHREAD bit of a task's flags (include/linux/sched.h).
const pfKthread = 0x00200000

// processTraits reads, from /proc, a process's real uid, whether it is a
// kernel thread (PF_KTHREAD in the flags of /proc/PID/stat), and its thread
// group: /proc/TID exists for every thread of a process too, and a thread's
// group (Tgid in /proc/PID/status) is the process it belongs to.
func processTraits(pid int) (uid int, kernelThread bool, tgid int, err error) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return -1, false, 0, err
	}
	// The command name, in parentheses, may hold spaces and parentheses:
	// the fields after it start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return -1, false, 0, fmt.Errorf("%s/stat: no command name", dir)
	}
	fields := strings.Fields(string(stat[i+1:]))
	// state ppid pgrp session tty_nr tpgid flags: flags is the 7th.
	if len(fields) < 7 {
		return -1, false, 0, fmt.Errorf("%s/stat: too few fields", dir)
	}
	flags, err := strconv.ParseUint(fields[6], 10, 64)
	if err != nil {
		return -1, false, 0, fmt.Errorf("%s/stat: flags: %w", dir, err)
	}
	// The flag alone says it: a process that has exited and is not yet
	// reaped (a zombie, as a child that ended at once is while `ledger run`
	// registers it) has no /proc/PID/exe either, and is no kernel thread.
	kernelThread = flags&pfKthread != 0
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return -1, kernelThread, 0, err
	}
	uid = -1
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Tgid:"); ok {
			tgid, _ = strconv.Atoi(strings.TrimSpace(rest))
		}
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				uid, err = strconv.Atoi(f[0])
				return uid, kernelThread, tgid, err // Tgid comes before Uid
			}
		}
	}
	return -1, kernelThread, tgid, fmt.Errorf("%s/status: no Uid line", dir)
}
