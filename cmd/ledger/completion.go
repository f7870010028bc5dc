package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portledger/portledger/ledger"
)

// The completion scripts ask the binary itself what fits the word under the
// cursor (`ledger __complete WORDS...`), so they know every subcommand and
// flag of the version installed, and the services and ports of the ledger.

const bashCompletion = `# bash completion for ledger: source <(ledger completion bash)
_ledger() {
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$(ledger __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)" -- "$cur"))
}
complete -o default -F _ledger ledger
`

const zshCompletion = `#compdef ledger
# zsh completion for ledger: source <(ledger completion zsh), after compinit
_ledger() {
    local -a candidates
    candidates=("${(@f)$(ledger __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if (( ${#candidates} )) && [[ -n ${candidates[1]} ]]; then
        compadd -a candidates
    else
        _files
    fi
}
compdef _ledger ledger
`

const fishCompletion = `# fish completion for ledger: ledger completion fish | source
function __ledger_complete
    set -l words (commandline -opc) (commandline -ct)
    ledger __complete $words[2..-1] 2>/dev/null
end
complete -c ledger -f -a '(__ledger_complete)'
`

func runCompletion(ctx context.Context, e *env, args []string) error {
	var c common
	fs := newFlags(e, "completion", "completion bash|zsh|fish", `
Print the shell completion script for bash, zsh or fish. It completes
subcommands, their flags, service names and held ports (asking the daemon,
or the ledger file). Load it with:

  bash:  source <(ledger completion bash)       (or save it in ~/.local/share/bash-completion/completions/ledger)
  zsh:   source <(ledger completion zsh)        (after compinit)
  fish:  ledger completion fish | source        (or save it in ~/.config/fish/completions/ledger.fish)`, &c, false)
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("completion takes one shell: bash, zsh or fish")
	}
	var script string
	switch fs.Arg(0) {
	case "bash":
		script = bashCompletion
	case "zsh":
		script = zshCompletion
	case "fish":
		script = fishCompletion
	default:
		return usagef("completion: unknown shell %q: want bash, zsh or fish", fs.Arg(0))
	}
	_, err := io.WriteString(e.stdout, script)
	return err
}

// completeTimeout bounds what completion may spend asking the ledger: a
// shell waits on it at every Tab.
const completeTimeout = 2 * time.Second

// portArgs are the subcommands whose first argument is a port.
var portArgs = []string{"release", "who", "why", "register-pid"}

// boolFlags take no value: the word after one is an argument.
var boolFlags = []string{"--json", "-json", "--allow-ephemeral", "--follow", "--verify", "--socket", "--quiet", "--user"}

// runComplete prints the candidates for the last of words (the words of
// the command line after "ledger", the one under the cursor last, maybe
// empty), one a line. The shell filters them by the word's prefix.
func runComplete(ctx context.Context, e *env, words []string) error {
	if len(words) == 0 {
		words = []string{""}
	}
	cur := words[len(words)-1]
	var out []string
	if len(words) == 1 {
		for _, sc := range subcommands() {
			out = append(out, sc.name)
		}
		out = append(out, "help")
		return printCandidates(e.stdout, out, cur)
	}
	sub, prev := words[0], words[len(words)-2]
	switch {
	case strings.HasPrefix(cur, "-"):
		out = flagsOf(ctx, e, sub)
	case sub == "completion" && len(words) == 2:
		out = []string{"bash", "zsh", "fish"}
	case prev == "--format" && sub == "env":
		out = []string{"shell", "dotenv", "json"}
	case prev == "--proto":
		out = []string{"tcp", "udp", "both"}
	case prev == "--service":
		out = ledgerWords(ctx, e, words, func(a ledger.Allocation) string { return a.ServiceName })
	case prev == "--port" || slices.Contains(portArgs, sub) && positionals(words[1:len(words)-1]) == 0 && !takesValue(prev):
		out = ledgerWords(ctx, e, words, func(a ledger.Allocation) string { return strconv.Itoa(a.Port) })
	case sub == "service" && len(words) == 2:
		out = []string{"install", "uninstall"}
	}
	return printCandidates(e.stdout, out, cur)
}

// takesValue reports whether word is a flag whose value is the next word.
func takesValue(word string) bool {
	return strings.HasPrefix(word, "-") && !strings.Contains(word, "=") && !slices.Contains(boolFlags, word)
}

// positionals counts the arguments among words that are neither flags nor
// flag values.
func positionals(words []string) int {
	n := 0
	for i, w := range words {
		if strings.HasPrefix(w, "-") || i > 0 && takesValue(words[i-1]) {
			continue
		}
		n++
	}
	return n
}

func printCandidates(w io.Writer, cands []string, prefix string) error {
	var b strings.Builder
	seen := map[string]bool{}
	for _, c := range cands {
		if strings.HasPrefix(c, prefix) && !seen[c] {
			seen[c] = true
			b.WriteString(c)
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// flagsOf lists the flags of a subcommand, read from its own --help.
func flagsOf(ctx context.Context, e *env, sub string) []string {
	for _, sc := range subcommands() {
		if sc.name != sub {
			continue
		}
		var help bytes.Buffer
		he := &env{stdin: strings.NewReader(""), stdout: &help, stderr: io.Discard, getenv: e.getenv}
		_ = sc.run(ctx, he, []string{"--help"})
		var out []string
		sc := bufio.NewScanner(&help)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "  -"); ok {
				name, _, _ := strings.Cut(rest, " ")
				out = append(out, "--"+strings.TrimPrefix(name, "-"))
			}
		}
		return out
	}
	return nil
}

// ledgerWords asks the ledger (the daemon, or the file) for the current
// allocations and returns one word of each. --data and --addr on the
// command line being completed are honoured. Any failure gives no words.
func ledgerWords(ctx context.Context, e *env, words []string, word func(ledger.Allocation) string) []string {
	var c common
	fs := newFlags(e, "complete", "", "", &c, false)
	for i := 0; i+1 < len(words)-1; i++ {
		switch words[i] {
		case "--data", "-data", "--addr", "-addr", "--token", "-token":
			_ = fs.Set(strings.TrimLeft(words[i], "-"), words[i+1])
		}
	}
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	b, err := connect(ctx, &c)
	if err != nil {
		return nil
	}
	allocs, err := b.Allocations(ctx, ledger.AllocationQuery{})
	if closeWith(b, err) != nil {
		return nil
	}
	out := make([]string, 0, len(allocs))
	for _, a := range allocs {
		out = append(out, word(a))
	}
	slices.Sort(out)
	return out
}
