package ledgertest_test

import (
	"os"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/portledger/portledger/internal/ledgertest"
	"github.com/portledger/portledger/ledger"
	"github.com/shirou/gopsutil/v3/process"
)

func TestClock(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	start := time.Date(2025, 11, 15, 14, 30, 0, 0, time.UTC)
	c := ledgertest.NewClock(start, time.Second)
	is.Equal(c.Now(), start)                  // the first reading is the start
	is.Equal(c.Now(), start.Add(time.Second)) // then it steps
	c.Add(-time.Hour)
	is.Equal(c.Now(), start.Add(2*time.Second-time.Hour)) // Add moves it back
	c.Set(start)
	is.Equal(c.Now(), start) // Set puts it anywhere

	still := ledgertest.NewClock(start, 0)
	is.Equal(still.Now(), still.Now()) // with no step it stands still
}

func TestMustOpenLog(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	l := ledgertest.MustOpenLog(t, ledger.Options{})
	_, err := l.Append([]ledger.Event{{Type: ledger.EventStatsReported, Port: 8000, StatsReported: &ledger.StatsReported{RequestCount: 1}}}, nil)
	is.NoErr(err) // append to the opened log; Cleanup checks and closes it
}

func TestCheckLog(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	data := t.TempDir()
	l, err := ledger.Open(ledger.Layout{Dir: data}.DB(), ledger.Options{})
	is.NoErr(err) // open
	_, err = l.Append([]ledger.Event{{Type: ledger.EventStatsReported, Port: 8000, StatsReported: &ledger.StatsReported{RequestCount: 1}}}, nil)
	is.NoErr(err) // append
	is.NoErr(l.Close())
	is.Equal(ledgertest.CheckLog(t, data), uint64(1)) // the checker counts what the file holds
}

func TestSleeper(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	pid := ledgertest.Sleeper(t)
	is.True(pid != os.Getpid()) // not this process
	alive, err := process.PidExists(int32(pid))
	is.NoErr(err)  // asked the OS
	is.True(alive) // alive while the test runs
}
