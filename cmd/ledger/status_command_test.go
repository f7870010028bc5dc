package main

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/matryer/is"
)

// The status table shows the holder's command line beside its pid (cut to
// statusCommandWidth), so a test process that got its port from the
// portserver, or any registered service, is named by what it runs.
func TestStatusShowsTheCommandLine(t *testing.T) {
	t.Parallel() // its own data directory; it binds no port
	is := is.New(t)
	data := t.TempDir()
	out, _, code := run(t, data, "allocate", "--service", "cmdline")
	is.Equal(code, 0) // allocate
	port := strings.TrimSpace(out)
	long := strings.Repeat("x", 80)
	// sh stays the process (it waits for sleep), with its arguments as
	// its command line: "sh -c sleep 300; : xxx...".
	child := exec.Command("sh", "-c", "sleep 300; :", long)
	is.NoErr(child.Start())
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	_, errOut, code := run(t, data, "register-pid", port, strconv.Itoa(child.Process.Pid))
	is.Equal(code, 0) // register the child
	is.Equal(errOut, "")

	out, _, code = run(t, data, "status")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "COMMAND")) // the column
	line := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, port+" ") {
			line = l
		}
	}
	is.True(strings.Contains(line, "sh -c sleep 300; : xxx"))       // the holder's command line
	is.True(strings.HasSuffix(line, "..."))                         // cut where it is long
	is.True(!strings.Contains(line, long))                          // not all of it
	is.True(len([]rune(line[strings.Index(line, "sh -c"):])) == 60) // at statusCommandWidth
}
