package watchdog

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// TestDecide walks the state machine through sequences of probes. The
// probes are values here because decide is a pure function; the tests in
// watchdog_test.go produce the same situations with real processes.
func TestDecide(t *testing.T) {
	t0 := time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC)
	opts := Options{StartGrace: time.Minute, Failures: 2, Lease: 10 * time.Minute}.withDefaults()
	var (
		up       = probe{Alive: true, Listening: true, EndpointOK: true}
		quiet    = probe{Alive: true, EndpointOK: true}
		gone     = probe{Gone: "exited", EndpointOK: true}
		failing  = probe{Alive: true, Listening: true, Endpoint: "status 500"}
		served   = probe{Listening: true, EndpointOK: true}
		deserted = probe{EndpointOK: true}
	)
	type step struct {
		p       probe
		at      time.Duration // since allocation
		to      ledger.Health
		release bool
	}
	tests := []struct {
		name  string
		pid   int
		from  ledger.Health
		steps []step
	}{
		{"listening at once is healthy", 42, ledger.HealthStarting, []step{
			{p: up, to: ledger.HealthHealthy},
		}},
		{"quiet within grace stays starting", 42, ledger.HealthStarting, []step{
			{p: quiet, at: 10 * time.Second, to: ledger.HealthStarting},
			{p: quiet, at: 50 * time.Second, to: ledger.HealthStarting},
			{p: quiet, at: 61 * time.Second, to: ledger.HealthStarting},
			{p: quiet, at: 62 * time.Second, to: ledger.HealthUnhealthy},
		}},
		{"one failure is forgiven", 42, ledger.HealthHealthy, []step{
			{p: quiet, to: ledger.HealthHealthy},
			{p: up, to: ledger.HealthHealthy},
			{p: quiet, to: ledger.HealthHealthy},
			{p: quiet, to: ledger.HealthUnhealthy},
			{p: up, to: ledger.HealthHealthy},
		}},
		{"endpoint failing is unhealthy", 42, ledger.HealthHealthy, []step{
			{p: failing, to: ledger.HealthHealthy},
			{p: failing, to: ledger.HealthUnhealthy},
			{p: failing, to: ledger.HealthUnhealthy},
		}},
		{"gone twice is dead and released", 42, ledger.HealthHealthy, []step{
			{p: gone, to: ledger.HealthHealthy},
			{p: gone, to: ledger.HealthDead, release: true},
		}},
		{"gone once then back is not dead", 42, ledger.HealthHealthy, []step{
			{p: gone, to: ledger.HealthHealthy},
			{p: up, to: ledger.HealthHealthy},
			{p: gone, to: ledger.HealthHealthy},
		}},
		{"already dead is released again", 42, ledger.HealthDead, []step{
			{p: gone, to: ledger.HealthDead},
			{p: gone, to: ledger.HealthDead, release: true},
		}},
		{"served without a pid is healthy", 0, ledger.HealthStarting, []step{
			{p: served, to: ledger.HealthHealthy},
		}},
		{"never listened keeps its lease", 0, ledger.HealthStarting, []step{
			{p: deserted, at: 2 * time.Minute, to: ledger.HealthStarting},
			{p: deserted, at: 9 * time.Minute, to: ledger.HealthStarting},
			{p: deserted, at: 10 * time.Minute, to: ledger.HealthStarting, release: true},
		}},
		{"a live pid that never listened ends by its lease", 42, ledger.HealthStarting, []step{
			{p: quiet, at: 2 * time.Minute, to: ledger.HealthStarting},
			{p: quiet, at: 3 * time.Minute, to: ledger.HealthUnhealthy},
			{p: quiet, at: 9 * time.Minute, to: ledger.HealthUnhealthy},
			{p: quiet, at: 10 * time.Minute, to: ledger.HealthUnhealthy, release: true},
		}},
		{"a live pid that listened once keeps its port", 42, ledger.HealthStarting, []step{
			{p: up, at: time.Minute, to: ledger.HealthHealthy},
			{p: quiet, at: 2 * time.Minute, to: ledger.HealthHealthy},
			{p: quiet, at: 3 * time.Minute, to: ledger.HealthUnhealthy},
			{p: quiet, at: time.Hour, to: ledger.HealthUnhealthy},
		}},
		{"unhealthy before the watchdog started counts from its first check", 42, ledger.HealthUnhealthy, []step{
			{p: quiet, at: time.Hour, to: ledger.HealthUnhealthy},
			{p: quiet, at: time.Hour + 9*time.Minute, to: ledger.HealthUnhealthy},
			{p: quiet, at: time.Hour + 10*time.Minute, to: ledger.HealthUnhealthy, release: true},
		}},
		{"stopped listening without a pid", 0, ledger.HealthHealthy, []step{
			{p: deserted, at: time.Hour, to: ledger.HealthHealthy},
			{p: deserted, at: time.Hour + time.Minute, to: ledger.HealthUnhealthy},
			{p: deserted, at: time.Hour + 9*time.Minute, to: ledger.HealthUnhealthy},
			{p: deserted, at: time.Hour + 10*time.Minute, to: ledger.HealthUnhealthy, release: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			a := ledger.Allocation{Port: 8000, PID: tt.pid, AllocatedAt: t0, HealthStatus: tt.from}
			var tr tracker
			for _, s := range tt.steps {
				d := decide(a, s.p, &tr, t0.Add(s.at), opts)
				is.Equal(d.To, s.to)                 // state after the step
				is.Equal(d.Release != "", s.release) // released or not
				is.True(d.Finding != "")             // every probe is explained
				if d.To != a.HealthStatus {
					a.HealthStatus = d.To // as the registry would after RecordHealth
				}
			}
		})
	}
}

func TestDecideOwnLeaseWins(t *testing.T) {
	is := is.New(t)
	t0 := time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC)
	opts := Options{}.withDefaults()
	a := ledger.Allocation{Port: 8000, AllocatedAt: t0, HealthStatus: ledger.HealthStarting, Lease: ledger.Duration(time.Minute)}
	var tr tracker
	d := decide(a, probe{EndpointOK: true}, &tr, t0.Add(59*time.Second), opts)
	is.Equal(d.Release, "") // within its own lease
	d = decide(a, probe{EndpointOK: true}, &tr, t0.Add(time.Minute), opts)
	is.Equal(d.Release, "lease of 1m0s ran out: no process registered and nothing listening on port 8000")
}

func TestClipKeepsWholeRunes(t *testing.T) {
	is := is.New(t)
	is.Equal(clip("short"), "short")
	long := strings.Repeat("a", ledger.MaxText-1) + "é and more"
	got := clip(long)
	is.Equal(len(got), ledger.MaxText-1) // the two-byte rune at the limit is dropped whole
	is.True(utf8.ValidString(got))       // still valid UTF-8
}
