package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
)

func TestPortVarName(t *testing.T) {
	for _, c := range []struct{ service, want string }{
		{"api", "LEDGER_PORT_API"},
		{"grace-backend", "LEDGER_PORT_GRACE_BACKEND"},
		{"grace_backend.v2", "LEDGER_PORT_GRACE_BACKEND_V2"},
		{"Learning9", "LEDGER_PORT_LEARNING9"},
	} {
		t.Run(c.service, func(t *testing.T) {
			is := is.New(t)
			is.Equal(portVarName(c.service), c.want)
		})
	}
}

func TestEnvPrintsEveryHeldPort(t *testing.T) {
	data := t.TempDir()
	ports := map[string]string{}
	for _, s := range []string{"grace_backend", "learning", "api-gw"} {
		out, errOut, code := run(t, data, "allocate", "--service", s)
		if code != 0 {
			t.Fatalf("allocate %s: %s", s, errOut)
		}
		ports[s] = strings.TrimSpace(out)
	}
	// A released port has no variable.
	out, _, _ := run(t, data, "allocate", "--service", "gone")
	run(t, data, "release", strings.TrimSpace(out))

	t.Run("shell", func(t *testing.T) {
		is := is.New(t)
		out, errOut, code := run(t, data, "env")
		is.Equal(code, 0)
		is.Equal(errOut, "")
		want := "export LEDGER_PORT_API_GW=" + ports["api-gw"] + "\n" +
			"export LEDGER_PORT_GRACE_BACKEND=" + ports["grace_backend"] + "\n" +
			"export LEDGER_PORT_LEARNING=" + ports["learning"] + "\n"
		is.Equal(out, want) // export lines sorted by name, none for the released port
	})
	t.Run("dotenv", func(t *testing.T) {
		is := is.New(t)
		out, _, code := run(t, data, "env", "--format", "dotenv")
		is.Equal(code, 0)
		is.True(strings.HasPrefix(out, "LEDGER_PORT_API_GW="+ports["api-gw"]+"\n")) // KEY=VALUE lines
		is.Equal(strings.Count(out, "\n"), 3)
	})
	t.Run("json", func(t *testing.T) {
		is := is.New(t)
		out, _, code := run(t, data, "env", "--format", "json")
		is.Equal(code, 0)
		var m map[string]int
		is.NoErr(json.Unmarshal([]byte(out), &m)) // one object
		is.Equal(len(m), 3)
		is.True(m["LEDGER_PORT_LEARNING"] > 0) // with numbers
	})
}

func TestRunSetsThePortsOfEveryService(t *testing.T) {
	is := is.New(t)
	data, dir := t.TempDir(), t.TempDir()
	out, errOut, code := testbin.Run(t, runCmd(t, data, "allocate", "--service", "db"))
	is.Equal(code, 0) // a service that holds a port already
	is.Equal(errOut, "")
	db := strings.TrimSpace(out)
	info := filepath.Join(dir, "api.json")
	r := startRun(t, data, []string{"--service", "api"}, "-info", info)
	in := readInfo(t, r, info)
	is.Equal(in.PortVars["LEDGER_PORT_DB"], db)       // the other service's port
	is.Equal(in.PortVars["LEDGER_PORT_API"], in.Port) // and its own
	is.NoErr(r.cmd.Process.Signal(os.Interrupt))
	r.wait(t)
}
