package main

import (
	"bufio"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
)

func TestHelpListsOnlyItsOwnFlagsWithTwoDashes(t *testing.T) {
	data := t.TempDir()
	for _, sc := range subcommands() {
		if sc.name == "hub" {
			continue // the ledger-hub program's help; it prints its flags with the same flagdoc
		}
		t.Run(sc.name, func(t *testing.T) {
			is := is.New(t)
			out, _, code := run(t, data, sc.name, "--help")
			is.Equal(code, 0) // --help succeeds
			_, flags, ok := strings.Cut(out, "\nFlags")
			is.Equal(ok, sc.name != "version") // a flags section, but for version, which has no flags
			for _, line := range strings.Split(flags, "\n") {
				if strings.HasPrefix(line, "  -") {
					is.True(strings.HasPrefix(line, "  --")) // the two-dash spelling the docs use
				}
			}
			if offline[sc.name] {
				is.True(!strings.Contains(flags, "--addr"))  // no daemon flags where no daemon is asked
				is.True(!strings.Contains(flags, "--token")) // likewise
			}
			if sc.name != "serve" && sc.name != "range" {
				is.True(!strings.Contains(flags, "--range ")) // the range is set by serve and range set alone
			}
			help, _, code := run(t, data, "help", sc.name)
			is.Equal(code, 0)   // ledger help NAME
			is.Equal(help, out) // is NAME --help
		})
	}
}

func TestMistakesOfTheCommandLine(t *testing.T) {
	data := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"mistyped subcommand", []string{"stauts"}, "Did you mean 'ledger status'?"},
		{"another", []string{"hitsory"}, "Did you mean 'ledger history'?"},
		{"bare ledger", nil, "allocate "},
		{"unknown format", []string{"events", "--format", "xml"}, "want json or text"},
		{"a flag named as the docs spell it", []string{"status", "--bogus"}, "flag provided but not defined: --bogus"},
		{"a flag without its value", []string{"history", "--port"}, "flag needs an argument: --port"},
		{"a read given --range", []string{"status", "--range", "8000-8200"}, "'ledger range' shows it, 'ledger range set LO-HI' changes it"},
		{"version takes nothing", []string{"version", "--data", data}, "not defined: --data"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			_, errOut, code := run(t, data, tt.args...)
			is.Equal(code, 2) // a usage error
			is.True(strings.Contains(errOut, tt.want))
		})
	}
}

func TestEventsFollowAndText(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	_, _, code := run(t, data, "allocate", "--service", "before")
	is.Equal(code, 0)
	out, _, code := run(t, data, "events", "--format", "text")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "allocate")) // one line per event, for people
	is.True(strings.Contains(out, "before"))
	is.True(!strings.Contains(out, "{")) // not JSON

	startServeEnv(t, data, testbin.Env(data, e2eRange))
	follow := ledgerCmd(t, data, "events", "--follow", "--format", "text")
	stdout, err := follow.StdoutPipe()
	is.NoErr(err)
	is.NoErr(follow.Start())
	defer func() { follow.Process.Signal(syscall.SIGINT); follow.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	want := func(part string) {
		t.Helper()
		deadline := time.After(testbin.WaitTimeout)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("events --follow ended before %q", part)
				}
				if strings.Contains(l, part) {
					return
				}
			case <-deadline:
				t.Fatalf("events --follow never printed %q", part)
			}
		}
	}
	want("before") // the past first, as its help says, without --after
	_, _, code = run(t, data, "allocate", "--service", "after")
	is.Equal(code, 0)
	want("after") // then what commits
}

func TestReadmeMigrationNote(t *testing.T) {
	is := is.New(t)
	readme, err := os.ReadFile("../../README.md")
	is.NoErr(err)
	s := string(readme)
	is.True(strings.Contains(s, "GRACE_SERVICE")) // the old variable, and what replaces it
	is.True(strings.Contains(s, "fromisoformat")) // how older Python reads the timestamps
}
