package ledger_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// testID is a fixed event ID; its time is 2025-11-15T14:30:00.123Z.
var testID = func() ulid.ULID {
	var id ulid.ULID
	_ = id.SetTime(uint64(time.Date(2025, 11, 15, 14, 30, 0, 123e6, time.UTC).UnixMilli()))
	copy(id[6:], "0123456789")
	return id
}()

// sampleEvents returns one event of every type, each with every payload field
// set to something other than its zero value, without IDs.
func sampleEvents() []ledger.Event {
	return []ledger.Event{
		{Type: ledger.EventAllocated, Port: 8000, Allocated: &ledger.Allocated{
			ServiceName: "api", StartedBy: "alice", Purpose: "dev server", PID: 4242,
			PIDStarted: 1763216999123, HealthURL: "http://127.0.0.1:8000/healthz", Lease: 90 * time.Second,
		}},
		{Type: ledger.EventPIDRegistered, Port: 8001, PIDRegistered: &ledger.PIDRegistered{
			PID: 99999, PIDStarted: 1763216999456, Cmdline: "python -m http.server 8001",
			Reason: "process 4242 exited; pid 99999, a descendant of the registered process, listens on port 8001: it holds the port now",
		}},
		{Type: ledger.EventHealthChanged, Port: 8002, HealthChanged: &ledger.HealthChanged{
			From: ledger.HealthStarting, To: ledger.HealthUnhealthy, Reason: "not listening for 3 checks",
			Alive: true, Listening: false, Endpoint: "GET /healthz: 503",
		}},
		{Type: ledger.EventHealthChanged, Port: 8003, HealthChanged: &ledger.HealthChanged{
			From: ledger.HealthUnhealthy, To: ledger.HealthHealthy, Reason: "listening", Alive: true, Listening: true, Endpoint: "ok",
		}},
		{Type: ledger.EventStatsReported, Port: 8004, StatsReported: &ledger.StatsReported{RequestCount: 1 << 40, ErrorCount: 17}},
		{Type: ledger.EventReleased, Port: 8005, Released: &ledger.Released{
			Reason: "process exited", ReleasedBy: "watchdog", DurationMS: 3723004, RequestCount: 12, ErrorCount: 3,
		}},
		{Type: ledger.EventConflictDetected, Port: 8006, Conflict: &ledger.ConflictDetected{PID: 31337, Command: "nc -l 8006"}},
		{Type: ledger.EventRangeChanged, RangeChanged: &ledger.RangeChanged{
			From: ledger.Range{Lo: 8000, Hi: 8100}, To: ledger.Range{Lo: 9000, Hi: 9499},
		}},
		{Type: ledger.EventChainAccepted, ChainAccepted: &ledger.ChainAccepted{
			Breaks: 2, EventID: ulid.MustParse("01KAK2M1A9Q1ZB3Q2YV2Q7Q0ZD"), Seq: 41, Problem: "links 41-41 are missing", AcceptedBy: "uid 1000",
		}},
	}
}

// withImported returns copies of evs that carry an import source.
func withImported(evs []ledger.Event) []ledger.Event {
	out := make([]ledger.Event, len(evs))
	for i, e := range evs {
		e.Imported = &ledger.ImportSource{File: "logs/port_manager/allocations_20251115.jsonl", Line: 1000 + i}
		out[i] = e
	}
	return out
}

// withActors returns copies of evs that carry an actor, one of each way a
// write arrives.
func withActors(evs []ledger.Event) []ledger.Event {
	actors := []ledger.Actor{
		{Via: ledger.ViaSocket, UID: 1000, PID: 4242},
		{Via: ledger.ViaTCP, UID: -1, Token: "default"},
		{Via: ledger.ViaLocal, UID: 0, PID: 1},
		{Via: ledger.ViaWatchdog, UID: 4294967295, PID: 2147483647},
	}
	out := make([]ledger.Event, len(evs))
	for i, e := range evs {
		a := actors[i%len(actors)]
		e.Actor = &a
		out[i] = e
	}
	return out
}

// allSamples returns the sample events plain, imported, with an actor, and
// with both.
func allSamples() []ledger.Event {
	evs := append(sampleEvents(), withImported(sampleEvents())...)
	evs = append(evs, withActors(sampleEvents())...)
	return append(evs, withActors(withImported(sampleEvents()))...)
}

// encode returns the stored form of e and fails the test if it has none.
func encode(tb testing.TB, e ledger.Event) []byte {
	tb.Helper()
	b, err := ledger.AppendEncoded(nil, &e)
	if err != nil {
		tb.Fatalf("encode %s: %v", e.Type, err)
	}
	return b
}

func TestCodecRoundTrip(t *testing.T) {
	evs := allSamples()
	// The zero values of every payload must survive too.
	evs = append(evs,
		ledger.Event{Type: ledger.EventAllocated, Port: 1, Allocated: &ledger.Allocated{}},
		ledger.Event{Type: ledger.EventStatsReported, Port: 65535, StatsReported: &ledger.StatsReported{RequestCount: -1, ErrorCount: -1 << 62}},
		ledger.Event{Type: ledger.EventHealthChanged, Port: 8000, HealthChanged: &ledger.HealthChanged{To: ledger.HealthDead}},
	)
	for _, e := range evs {
		name := string(e.Type)
		if e.Imported != nil {
			name += "/imported"
		}
		if e.Actor != nil {
			name += "/" + string(e.Actor.Via)
		}
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			b := encode(t, e)
			got, err := ledger.DecodeEvent(testID, b)
			is.NoErr(err) // decode
			want := e
			want.ID = testID
			want.At = ledger.IDTime(testID)
			is.Equal(got, want) // decoded event equals the encoded one
		})
	}
}

func TestAppendEncodedAppends(t *testing.T) {
	is := is.New(t)
	e := sampleEvents()[0]
	prefix := []byte("prefix")
	b, err := ledger.AppendEncoded(append([]byte(nil), prefix...), &e)
	is.NoErr(err)                           // encode
	is.Equal(string(b[:6]), string(prefix)) // the prefix is kept
	got, err := ledger.DecodeEvent(testID, b[6:])
	is.NoErr(err)                              // decode what was appended
	is.Equal(got.Allocated.ServiceName, "api") // the appended part is the event
}

func TestDecodeEventRefusesCorruptValues(t *testing.T) {
	valid := encode(t, sampleEvents()[0])
	tests := []struct {
		name  string
		value []byte
	}{
		{"empty", nil},
		{"version only", valid[:1]},
		{"unknown version", append([]byte{9}, valid[1:]...)},
		{"version zero", append([]byte{0}, valid[1:]...)},
		{"type code zero", append([]byte{valid[0], 0}, valid[2:]...)},
		{"unknown type code", append([]byte{valid[0], 200}, valid[2:]...)},
		{"type code one past the last", append([]byte{valid[0], 8}, valid[2:]...)},
		{"header only", valid[:3]},
		{"truncated in a string", valid[:8]},
		{"truncated at the last field", valid[:len(valid)-1]},
		{"imported flag without source", append([]byte{valid[0], valid[1], 1}, valid[3:]...)},
		{"port past 65535", []byte{1, 4, 0, 0x80, 0x80, 0x04, 0, 0}},
		{"unknown health code", []byte{1, 3, 0, 1, 9, 2, 0, 0, 0}},
		{"actor flag without actor", append([]byte{valid[0], valid[1], 2}, valid[3:]...)},
		{"actor via code zero", append(append([]byte{valid[0], valid[1], 2}, valid[3:]...), 0, 1, 1, 0)},
		{"unknown actor via code", append(append([]byte{valid[0], valid[1], 2}, valid[3:]...), 9, 1, 1, 0)},
		{"actor uid past 2^32-1", append(append([]byte{valid[0], valid[1], 2}, valid[3:]...), 1, 0x81, 0x80, 0x80, 0x80, 0x10, 1, 0)},
		{"actor pid past 2^31-1", append(append([]byte{valid[0], valid[1], 2}, valid[3:]...), 1, 1, 0x80, 0x80, 0x80, 0x80, 0x08, 0)},
	}
	// Every proper prefix of every valid encoding is truncated.
	for _, e := range allSamples() {
		b := encode(t, e)
		for n := range len(b) {
			tests = append(tests, struct {
				name  string
				value []byte
			}{string(e.Type) + " cut", b[:n]})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			_, err := ledger.DecodeEvent(testID, tt.value)
			is.True(err != nil)                        // refused
			is.True(errors.Is(err, ledger.ErrCorrupt)) // the error wraps ErrCorrupt
		})
	}
}

func TestAppendEncodedRefusesBadEvents(t *testing.T) {
	tests := []struct {
		name string
		e    ledger.Event
	}{
		{"allocated without payload", ledger.Event{Type: ledger.EventAllocated, Port: 8000}},
		{"pid_registered without payload", ledger.Event{Type: ledger.EventPIDRegistered, Port: 8000}},
		{"health_changed without payload", ledger.Event{Type: ledger.EventHealthChanged, Port: 8000}},
		{"stats_reported without payload", ledger.Event{Type: ledger.EventStatsReported, Port: 8000}},
		{"released without payload", ledger.Event{Type: ledger.EventReleased, Port: 8000}},
		{"conflict_detected without payload", ledger.Event{Type: ledger.EventConflictDetected, Port: 8000}},
		{"range_changed without payload", ledger.Event{Type: ledger.EventRangeChanged}},
		{"payload of another type", ledger.Event{Type: ledger.EventReleased, Port: 8000, Allocated: &ledger.Allocated{}}},
		{"unknown type", ledger.Event{Type: "exploded", Port: 8000}},
		{"negative port", ledger.Event{Type: ledger.EventStatsReported, Port: -1, StatsReported: &ledger.StatsReported{}}},
		{"port past 65535", ledger.Event{Type: ledger.EventStatsReported, Port: 65536, StatsReported: &ledger.StatsReported{}}},
		{"unknown health", ledger.Event{Type: ledger.EventHealthChanged, Port: 8000, HealthChanged: &ledger.HealthChanged{From: "zombie", To: ledger.HealthDead}}},
		{"actor without via", ledger.Event{Type: ledger.EventStatsReported, Port: 8000, StatsReported: &ledger.StatsReported{}, Actor: &ledger.Actor{UID: 1}}},
		{"actor uid below -1", ledger.Event{Type: ledger.EventStatsReported, Port: 8000, StatsReported: &ledger.StatsReported{}, Actor: &ledger.Actor{Via: ledger.ViaSocket, UID: -2}}},
		{"actor negative pid", ledger.Event{Type: ledger.EventStatsReported, Port: 8000, StatsReported: &ledger.StatsReported{}, Actor: &ledger.Actor{Via: ledger.ViaSocket, PID: -1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			prefix := []byte("keep")
			b, err := ledger.AppendEncoded(prefix, &tt.e)
			is.True(err != nil)                 // refused
			is.Equal(string(b), string(prefix)) // nothing appended on error
		})
	}
}

// FuzzDecodeEvent checks that no stored value makes DecodeEvent panic, and
// that whatever it accepts encodes back to a value that decodes the same.
func FuzzDecodeEvent(f *testing.F) {
	for _, e := range allSamples() {
		f.Add(encode(f, e))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ledger.DecodeEvent(testID, b)
		if err != nil {
			if !errors.Is(err, ledger.ErrCorrupt) {
				t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		again, err := ledger.AppendEncoded(nil, &e)
		if err != nil {
			t.Fatalf("decoded event %+v does not encode: %v", e, err)
		}
		e2, err := ledger.DecodeEvent(testID, again)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", e, e2)
		}
	})
}

func BenchmarkDecodeEvent(b *testing.B) {
	evs := sampleEvents()
	values := make([][]byte, len(evs))
	for i, e := range evs {
		values[i] = encode(b, e)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := ledger.DecodeEvent(testID, values[i%len(values)]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSamplesCoverEveryField keeps the samples of the codec's tests in step
// with the event types by reflection: every payload of Event (and the
// import source and actor) appears in some sample, and every exported field
// of each is non-zero in some sample. A field added to a payload but left
// out of the samples, and so perhaps out of the codec, fails here by itself.
func TestSamplesCoverEveryField(t *testing.T) {
	samples := allSamples()
	et := reflect.TypeFor[ledger.Event]()
	payloads := 0
	for i := range et.NumField() {
		f := et.Field(i)
		if f.Type.Kind() != reflect.Pointer || f.Type.Elem().Kind() != reflect.Struct {
			continue // ID, Type, At, Port: set by the log or checked elsewhere
		}
		payloads++
		t.Run(f.Name, func(t *testing.T) {
			st := f.Type.Elem()
			seen := false
			set := make([]bool, st.NumField())
			for _, e := range samples {
				p := reflect.ValueOf(e).Field(i)
				if p.IsNil() {
					continue
				}
				seen = true
				for j := range st.NumField() {
					if !p.Elem().Field(j).IsZero() {
						set[j] = true
					}
				}
			}
			if !seen {
				t.Fatalf("no sample event carries %s: add one to sampleEvents", f.Name)
			}
			for j := range st.NumField() {
				if st.Field(j).IsExported() && !set[j] {
					t.Errorf("%s.%s is zero in every sample: set it in sampleEvents (and check the codec writes it)", st.Name(), st.Field(j).Name)
				}
			}
		})
	}
	is := is.New(t)
	is.True(payloads >= 10) // the payloads, the import source and the actor were all found
}
