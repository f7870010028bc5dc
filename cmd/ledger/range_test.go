package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/testbin"
)

// rangeChanges returns the range_changed events of data's ledger, through
// `ledger range --json`.
func rangeChanges(t *testing.T, data string) rangeView {
	t.Helper()
	out, errOut, code := run(t, data, "range", "--json")
	if code != 0 {
		t.Fatalf("range --json: %s", errOut)
	}
	var v rangeView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("range --json: %v\n%s", err, out)
	}
	return v
}

func TestReadsNeverChangeTheRange(t *testing.T) {
	data := t.TempDir()
	_, errOut, code := run(t, data, "range", "set", e2eRange)
	if code != 0 {
		t.Fatalf("range set: %s", errOut)
	}
	// Another person's shell profile names another range.
	other := append(testbin.Env(data, e2eRange), "LEDGER_RANGE=30000-30050")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"status", []string{"status"}},
		{"status --json", []string{"status", "--json"}},
		{"who", []string{"who", "30500"}},
		{"history", []string{"history"}},
		{"usage", []string{"usage"}},
		{"why", []string{"why", "30500"}},
		{"why --json", []string{"why", "30500", "--json"}},
		{"env", []string{"env"}},
		{"range", []string{"range"}},
		{"allocate", []string{"allocate", "--service", "profiled"}},
		{"check", []string{"check"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			_, errOut, code := runEnv(t, other, tt.args...)
			is.Equal(code, 0) // the environment's range does not make a command fail
			if tt.name == "allocate" {
				is.True(strings.Contains(errOut, "LEDGER_RANGE=30000-30050 is not the ledger's range")) // the person is told
			}
			v := rangeChanges(t, data)
			is.Equal(v.PortRange, e2eRange) // the range is the ledger's
			is.Equal(len(v.Changes), 1)     // and nothing recorded a change
		})
	}
	is := is.New(t)
	_, errOut, code = run(t, data, "status", "--range", "30000-30050")
	is.Equal(code, 2)                               // --range is no flag of a read
	is.True(strings.Contains(errOut, "-range"))     // naming it
	is.Equal(len(rangeChanges(t, data).Changes), 1) // nothing recorded
}

func TestRangeSetAndItsHistory(t *testing.T) {
	is := is.New(t)
	data := t.TempDir()
	out, _, code := run(t, data, "range")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "Port range "+e2eRange)) // the range set for the test's commands
	out, _, code = run(t, data, "range", "set", "30500-30700")
	is.Equal(code, 0)
	is.Equal(out, "range "+e2eRange+" -> 30500-30700\n") // the change, said
	out, _, code = run(t, data, "range", "set", "30500-30700")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "nothing recorded")) // a set to the same range records nothing
	v := rangeChanges(t, data)
	is.Equal(v.PortRange, "30500-30700")
	is.Equal(len(v.Changes), 2) // the test's own set, then this one
	is.Equal(v.Changes[1].RangeChanged.From.String(), e2eRange)
	is.Equal(v.Changes[1].RangeChanged.To.String(), "30500-30700")
	out, _, _ = run(t, data, "range")
	is.True(strings.Contains(out, e2eRange+"  30500-30700")) // the table lists the change

	port, _, code := run(t, data, "allocate", "--service", "high", "--port", "30650")
	is.Equal(code, 0)
	is.Equal(strings.TrimSpace(port), "30650")
	_, errOut, code := run(t, data, "range", "set", e2eRange)
	is.Equal(code, 1)                               // refused
	is.True(strings.Contains(errOut, "port 30650")) // naming the port left outside
	is.Equal(len(rangeChanges(t, data).Changes), 2) // and nothing recorded
}
