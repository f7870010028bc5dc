package projection_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/projection"
)

func TestDraftReadsThroughAndLeavesTheRegistryAlone(t *testing.T) {
	is := is.New(t)
	r := projection.NewRegistry()
	r.Apply(allocated(8000, "api"))
	r.Apply(released(8000))
	r.Apply(allocated(8001, "web"))

	d := r.Draft()
	p, ok := d.LastPortOf("api")
	is.True(ok)       // the draft sees the registry's services
	is.Equal(p, 8000) // and their last ports
	d.Apply(allocated(8002, "api"))
	d.Apply(allocated(8003, "new"))
	d.Apply(released(8001))

	p, _ = d.LastPortOf("api")
	is.Equal(p, 8002) // the draft's own change wins
	_, ok = d.LastPortOf("new")
	is.True(ok) // a service new in the draft

	is.Equal(r.LastPort, map[string]int{"api": 8000, "web": 8001}) // the registry is unchanged
	is.True(r.Allocs[8001] != nil)                                 // its allocations too
	is.Equal(len(r.Allocs), 1)

	c := d.Clone() // a whole copy of a draft holds both layers
	is.Equal(c.LastPort, map[string]int{"api": 8002, "web": 8001, "new": 8003})
	want := d.Clone()
	is.Equal(snapshotRoundTrip(t, c).LastPort, want.LastPort) // and marshals them all
}

// BenchmarkDraft is the writer's per-group copy of the registry with 50 and
// with 1M service names ever seen: Draft's cost must not grow with them;
// Clone's, for comparison, does.
func BenchmarkDraft(b *testing.B) {
	for _, n := range []int{50, 1_000_000} {
		r := projection.NewRegistry()
		for i := range n {
			r.LastPort[fmt.Sprintf("run-%07d", i)] = 8000 + i%101
		}
		for p := 8000; p < 8101; p++ {
			r.Apply(allocated(p, fmt.Sprintf("run-%07d", p)))
		}
		b.Run(fmt.Sprintf("services=%d/Draft", n), func(b *testing.B) {
			for b.Loop() {
				_ = r.Draft()
			}
		})
		b.Run(fmt.Sprintf("services=%d/Clone", n), func(b *testing.B) {
			for b.Loop() {
				_ = r.Clone()
			}
		})
	}
}

// A registry that asks the log for last ports keeps none itself, so its
// snapshots carry none, and its drafts still see them.
func TestLastPortLookup(t *testing.T) {
	is := is.New(t)
	index := map[string]int{"api": 8007}
	r := projection.NewRegistry()
	r.Apply(allocated(8000, "old"))
	r.SetLastPortLookup(func(s string) (int, bool) { p, ok := index[s]; return p, ok })
	r.Apply(allocated(8001, "web"))
	r.Apply(released(8001))

	is.Equal(r.LastPort, nil) // nothing kept in memory
	p, ok := r.LastPortOf("api")
	is.True(ok)       // answered by the lookup
	is.Equal(p, 8007) // with the index's port

	d := r.Draft()
	d.Apply(allocated(8002, "api"))
	p, _ = d.LastPortOf("api")
	is.Equal(p, 8002) // the draft's own change wins over the index
	p, _ = r.LastPortOf("api")
	is.Equal(p, 8007) // and stays in the draft

	c := r.Clone()
	is.Equal(c.LastPort, nil) // a copy asks the log too
	p, _ = c.LastPortOf("api")
	is.Equal(p, 8007)
	b, err := c.MarshalSnapshot()
	is.NoErr(err)                                      // snapshot
	is.True(!strings.Contains(string(b), "last_port")) // without last ports
	is.True(!strings.Contains(string(b), `"web"`))     // nor the names of services that hold nothing

	r.SetLastPortLookup(nil)
	_, ok = r.LastPortOf("api")
	is.True(!ok) // a registry that forgets last ports answers none
}
