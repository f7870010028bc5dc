package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
)

// completionEnv returns the environment of a shell that runs the real
// binary as `ledger`, on data.
func completionEnv(t *testing.T, data string) []string {
	t.Helper()
	dir := filepath.Dir(bins.Ledger(t))
	if filepath.Base(bins.Ledger(t)) != "ledger" {
		t.Fatalf("the test binary is not named ledger: %s", bins.Ledger(t))
	}
	return append(testbin.Env(data, whyRange), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestCompletionScriptsParse(t *testing.T) {
	for _, c := range []struct{ shell, check string }{
		{"bash", "bash"}, {"zsh", "zsh"}, {"fish", "fish"},
	} {
		t.Run(c.shell, func(t *testing.T) {
			is := is.New(t)
			sh, err := exec.LookPath(c.check)
			if err != nil {
				t.Skipf("%s is not installed here: its script is not checked", c.check)
			}
			script, errOut, code := testbin.Run(t, whyCmd(t, t.TempDir(), "completion", c.shell))
			is.Equal(code, 0) // the script is printed
			is.Equal(errOut, "")
			f := filepath.Join(t.TempDir(), "ledger."+c.shell)
			is.NoErr(os.WriteFile(f, []byte(script), 0o600))
			out, err := exec.Command(sh, "-n", f).CombinedOutput()
			is.NoErr(err)             // the shell's syntax check accepts it
			is.Equal(string(out), "") // without a word
		})
	}
}

// TestBashCompletesSubcommandsFlagsServicesAndPorts loads the bash script
// in a real bash and runs its completion function as bash would at a Tab.
func TestBashCompletesSubcommandsFlagsServicesAndPorts(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed here")
	}
	data := t.TempDir()
	port, errOut, code := testbin.Run(t, whyCmd(t, data, "allocate", "--service", "grace_backend"))
	if code != 0 {
		t.Fatalf("allocate: %s", errOut)
	}
	port = strings.TrimSpace(port)
	for _, c := range []struct {
		name  string
		words string // the COMP_WORDS array, the last word under the cursor
		want  []string
	}{
		{"a subcommand", `ledger wh`, []string{"who", "why"}},
		{"a held port", `ledger release ""`, []string{port}},
		{"a port after a flag", `ledger why --json ""`, []string{port}},
		{"a service name", `ledger allocate --service gr`, []string{"grace_backend"}},
		{"a flag", `ledger allocate --pro`, []string{"--proto"}},
		{"a flag's values", `ledger allocate --proto ""`, []string{"tcp", "udp", "both"}},
		{"a shell", `ledger completion ""`, []string{"bash", "zsh", "fish"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			script := `source <(ledger completion bash)
COMP_WORDS=(` + c.words + `); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_ledger
printf '%s\n' "${COMPREPLY[@]}"`
			cmd := exec.Command("bash", "-c", script)
			cmd.Env = completionEnv(t, data)
			out, errOut, code := testbin.Run(t, cmd)
			is.Equal(code, 0)                     // the function runs
			is.Equal(errOut, "")                  // quietly
			is.Equal(strings.Fields(out), c.want) // and offers exactly these
		})
	}
}

// TestCompletionAsksTheDaemon completes a held port and a service name
// while a daemon serves the data directory (and holds the ledger file).
func TestCompletionAsksTheDaemon(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed here")
	}
	data := t.TempDir()
	env := completionEnv(t, data)
	startServeEnv(t, data, env, "--range", whyRange)
	port, errOut, code := runEnv(t, env, "allocate", "--service", "served_api")
	if code != 0 {
		t.Fatalf("allocate: %s", errOut)
	}
	port = strings.TrimSpace(port)
	for _, c := range []struct {
		name, words string
		want        []string
	}{
		{"a held port", `ledger why ""`, []string{port}},
		{"a service name", `ledger history --service se`, []string{"served_api"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			cmd := exec.Command("bash", "-c", `source <(ledger completion bash)
COMP_WORDS=(`+c.words+`); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_ledger
printf '%s\n' "${COMPREPLY[@]}"`)
			cmd.Env = env
			out, errOut, code := testbin.Run(t, cmd)
			is.Equal(code, 0) // the function runs
			is.Equal(errOut, "")
			is.Equal(strings.Fields(out), c.want) // and the daemon's answer is offered
		})
	}
}

// TestFishCompletes loads the fish script in a real fish and asks it what
// it would offer (complete -C), where fish is installed.
func TestFishCompletes(t *testing.T) {
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Skip("fish is not installed here: its completion is not run")
	}
	data := t.TempDir()
	port, errOut, code := testbin.Run(t, whyCmd(t, data, "allocate", "--service", "grace_backend"))
	if code != 0 {
		t.Fatalf("allocate: %s", errOut)
	}
	port = strings.TrimSpace(port)
	for _, c := range []struct {
		name, line string
		want       []string
	}{
		{"a subcommand", "ledger wh", []string{"who", "why"}},
		{"a held port", "ledger release ", []string{port}},
		{"a service name", "ledger allocate --service gr", []string{"grace_backend"}},
		{"a flag's values", "ledger allocate --proto ", []string{"both", "tcp", "udp"}}, // fish sorts them
	} {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			cmd := exec.Command(fish, "--no-config", "-c", "ledger completion fish | source; complete -C '"+c.line+"'")
			cmd.Env = append(completionEnv(t, data), "HOME="+t.TempDir())
			out, errOut, code := testbin.Run(t, cmd)
			is.Equal(code, 0) // fish runs the script
			is.Equal(errOut, "")
			is.Equal(strings.Fields(out), c.want) // and offers exactly these
		})
	}
}

// TestZshCompletes loads the zsh script in a real zsh and runs its
// completion function on scripted words, with compadd and compdef (which
// need a terminal's completion system) replaced by ones that print what
// they are given, where zsh is installed.
func TestZshCompletes(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("zsh is not installed here: its completion is not run")
	}
	data := t.TempDir()
	port, errOut, code := testbin.Run(t, whyCmd(t, data, "allocate", "--service", "grace_backend"))
	if code != 0 {
		t.Fatalf("allocate: %s", errOut)
	}
	port = strings.TrimSpace(port)
	for _, c := range []struct {
		name, words string // the words array, the last one under the cursor
		want        []string
	}{
		{"a subcommand", `ledger wh`, []string{"who", "why"}},
		{"a held port", `ledger release ""`, []string{port}},
		{"a service name", `ledger allocate --service gr`, []string{"grace_backend"}},
		{"a flag's values", `ledger allocate --proto ""`, []string{"tcp", "udp", "both"}},
		{"nothing fits: files", `ledger import ""`, []string{"FILES"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			script := `compdef() { :; }
compadd() { [[ $1 == -a ]] && print -rl -- "${(@P)2}"; }
_files() { print FILES; }
source <(ledger completion zsh)
words=(` + c.words + `); CURRENT=${#words}
_ledger`
			cmd := exec.Command(zsh, "-f", "-c", script)
			cmd.Env = completionEnv(t, data)
			out, errOut, code := testbin.Run(t, cmd)
			is.Equal(code, 0) // the function runs
			is.Equal(errOut, "")
			is.Equal(strings.Fields(out), c.want) // and offers exactly these
		})
	}
}
