package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/portledger/portledger/ledger"
)

// PortVarPrefix begins the name of the variable that carries a service's
// port: LEDGER_PORT_<SERVICE>.
const PortVarPrefix = "LEDGER_PORT_"

func runEnvCmd(ctx context.Context, e *env, args []string) error {
	var c common
	var format string
	fs := newFlags(e, "env", "env [--format shell|dotenv|json]", `
Print LEDGER_PORT_<SERVICE>=PORT for every service that holds a port, so
that services can find each other: the service name upper-cased, each
character other than A-Z and 0-9 made '_' (grace-backend ->
LEDGER_PORT_GRACE_BACKEND). A service that holds several ports gets its
lowest. --format shell (the default) prints 'export' lines for
eval "$(ledger env)"; dotenv prints KEY=VALUE lines for .env files and
docker compose; json prints one object. 'ledger run' sets the same
variables in its command's environment.`, &c, false)
	fs.StringVar(&format, "format", "shell", "shell, dotenv or json")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("env takes no arguments, got %q", fs.Args())
	}
	switch format {
	case "shell", "dotenv", "json":
	default:
		return usagef("--format %q: want shell, dotenv or json", format)
	}
	c.reads = true
	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	allocs, err := b.Allocations(ctx, ledger.AllocationQuery{})
	if err = closeWith(b, err); err != nil {
		return err
	}
	vars, dups := portVars(allocs)
	for _, d := range dups {
		c.note("%s", d)
	}
	return printEnv(e.stdout, format, vars)
}

// portVar is one LEDGER_PORT_<SERVICE> variable.
type portVar struct {
	Name string
	Port int
}

// portVarName is the variable that carries service's port.
func portVarName(service string) string {
	b := []byte(strings.ToUpper(service))
	for i, ch := range b {
		if (ch < 'A' || ch > 'Z') && (ch < '0' || ch > '9') {
			b[i] = '_'
		}
	}
	return PortVarPrefix + string(b)
}

// portVars returns the variables of the services that hold ports, sorted
// by name: each service's lowest port. Two services whose names make the
// same variable keep the first by name; dups says which lost.
func portVars(allocs []ledger.Allocation) (vars []portVar, dups []string) {
	slices.SortFunc(allocs, func(a, b ledger.Allocation) int {
		if c := strings.Compare(a.ServiceName, b.ServiceName); c != 0 {
			return c
		}
		return a.Port - b.Port
	})
	owner := map[string]string{} // variable -> service
	for _, a := range allocs {
		name := portVarName(a.ServiceName)
		if svc, ok := owner[name]; ok {
			if svc != a.ServiceName {
				dups = append(dups, fmt.Sprintf("%s is %s's port; %s, whose name makes the same variable, is left out", name, escapeN(svc, 128), escapeN(a.ServiceName, 128)))
			}
			continue
		}
		owner[name] = a.ServiceName
		vars = append(vars, portVar{Name: name, Port: a.Port})
	}
	slices.SortFunc(vars, func(a, b portVar) int { return strings.Compare(a.Name, b.Name) })
	return vars, dups
}

// portEnv returns the variables as KEY, VALUE pairs for withEnv.
func portEnv(allocs []ledger.Allocation) []string {
	vars, _ := portVars(allocs)
	kv := make([]string, 0, 2*len(vars))
	for _, v := range vars {
		kv = append(kv, v.Name, strconv.Itoa(v.Port))
	}
	return kv
}

func printEnv(w io.Writer, format string, vars []portVar) error {
	if format == "json" {
		m := make(map[string]int, len(vars))
		for _, v := range vars {
			m[v.Name] = v.Port
		}
		return printJSON(w, m)
	}
	var b strings.Builder
	for _, v := range vars {
		if format == "shell" {
			b.WriteString("export ")
		}
		fmt.Fprintf(&b, "%s=%d\n", v.Name, v.Port)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// withoutPortVars drops inherited LEDGER_PORT_<SERVICE> variables: the
// ledger's own, fresh ones replace them, and a service that no longer holds
// a port must not seem to.
func withoutPortVars(env []string) []string {
	out := env[:0:0]
	for _, v := range env {
		if !strings.HasPrefix(v, PortVarPrefix) {
			out = append(out, v)
		}
	}
	return out
}
