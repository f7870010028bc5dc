package commands

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// RegistryFile is the base name of the original port manager's registry;
// events made from its live allocations carry it as their source file.
const RegistryFile = "port_registry.json"

// Original is what ReadOriginal made of the original port manager's files.
type Original struct {
	// Files are the files read: the registry (if any), then the JSONL logs.
	Files []string
	// Lines is the number of JSONL lines read, blank ones aside.
	Lines int
	// Events are the events to import, oldest first, each with its ID and
	// its source file and line.
	Events []ledger.Event
	// Malformed lists the lines that could not be read as an event.
	Malformed []ledger.ImportProblem
	// Warnings lists lines that were read but not imported (unknown
	// actions, stale registry entries) and the releases that the import
	// made up for allocations the old files never closed.
	Warnings []ledger.ImportProblem
	// End is the last moment the files speak of: the newest line's time or
	// the registry file's modification time, whichever is later. No
	// imported allocation outlives it.
	End time.Time
}

// ReadOriginal reads the original port manager's files under root,
// databases/port_registry/port_registry.json and
// logs/port_manager/*.jsonl, and makes the events of an import.
//
// JSONL lines map by their "action": allocate, release (also deallocate
// and cleanup), register_pid, health_change (also health), stats; other
// actions are skipped with a warning, and lines that are not JSON or lack
// a time, a port or a service are reported as malformed. Times without a
// zone are local time, as Python's datetime.now() wrote them.
//
// A live allocation of the registry becomes an allocation (with its PID,
// health and counts) when it is newer than every imported release of its
// port; when the logs have its allocate line, that line stands for it.
//
// No imported allocation outlives the files: each ends at the next imported
// event of its port that allocates it again, or, when the registry exists
// and does not hold it, by a made-up release 1 ms after its last event
// (reason "not in the original registry"), or else at End, the last moment
// the files speak of (reason "end of the original records"). After End an
// imported holder is history, never a holder: a service that still runs is
// registered again by its next `ledger run` or `ledger allocate`.
//
// Each event's ID is derived from the files alone, so reading the same
// files again gives the same IDs and Import skips them: the time is the
// line's time; the random part is the line number (4 bytes), an index
// that orders the events made from one line (1 byte), and a SHA-256 of the
// file's base name, the line number and the line (5 bytes).
//
// ENOTFOUND when root holds neither file.
func ReadOriginal(root string) (*Original, error) {
	o := &Original{}
	layout := ledger.Layout{Dir: root}
	logs, err := filepath.Glob(filepath.Join(layout.LogsDir(), "*.jsonl"))
	if err != nil {
		return nil, err
	}
	slices.Sort(logs)
	regData, err := os.ReadFile(layout.Registry())
	hasReg := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("import: %w", err)
	}
	if !hasReg && len(logs) == 0 {
		return nil, ledger.Errorf(ledger.ENOTFOUND, "no original port manager files under %s (want %s or %s)",
			root, layout.Registry(), filepath.Join(layout.LogsDir(), "*.jsonl"))
	}

	var evs []imported
	for _, path := range logs {
		o.Files = append(o.Files, path)
		if err := o.readLog(path, &evs); err != nil {
			return nil, err
		}
	}
	if hasReg {
		o.Files = append([]string{layout.Registry()}, o.Files...)
		evs = o.readRegistry(regData, evs)
		if info, err := os.Stat(layout.Registry()); err == nil {
			o.End = info.ModTime()
		}
	}
	slices.SortFunc(evs, func(a, b imported) int { return a.ev.ID.Compare(b.ev.ID) })
	if n := len(evs); n > 0 {
		if newest := ledger.IDTime(evs[n-1].ev.ID); newest.After(o.End) {
			o.End = newest
		}
	}
	if now := time.Now(); o.End.After(now) {
		o.End = now // a registry file touched by a clock ahead of ours
	}
	o.Events = o.sequence(evs, hasReg)
	return o, nil
}

// imported is an event of an import with what the sequencing needs.
type imported struct {
	ev        ledger.Event
	content   []byte // the source line, for the IDs of events made from it
	duration  bool   // a release that gave its duration
	confirmed bool   // an allocation the old registry holds
}

// originalLine is a line of the original allocation logs.
type originalLine struct {
	Timestamp    string          `json:"timestamp"`
	Action       string          `json:"action"`
	Port         json.RawMessage `json:"port"`
	ServiceName  string          `json:"service_name"`
	StartedBy    string          `json:"started_by"`
	Purpose      string          `json:"purpose"`
	PID          json.RawMessage `json:"pid"`
	Reason       string          `json:"reason"`
	ReleasedBy   string          `json:"released_by"`
	DurationS    *float64        `json:"duration_s"`
	RequestCount int64           `json:"request_count"`
	ErrorCount   int64           `json:"error_count"`
	HealthStatus string          `json:"health_status"`
	Status       string          `json:"status"`
	To           string          `json:"to"`
}

// originalAlloc is an entry of the original registry.
type originalAlloc struct {
	Port         json.RawMessage `json:"port"`
	ServiceName  string          `json:"service_name"`
	StartedBy    string          `json:"started_by"`
	Purpose      string          `json:"purpose"`
	PID          json.RawMessage `json:"pid"`
	AllocatedAt  string          `json:"allocated_at"`
	HealthStatus string          `json:"health_status"`
	RequestCount int64           `json:"request_count"`
	ErrorCount   int64           `json:"error_count"`
}

// readLog reads one JSONL file.
func (o *Original) readLog(path string, evs *[]imported) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	base := filepath.Base(path)
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			o.Lines++
			ev, problem := parseLine(base, n, bytes.TrimRight(line, "\r\n"))
			switch {
			case problem.malformed:
				o.Malformed = append(o.Malformed, ledger.ImportProblem{File: base, Line: n, Reason: problem.reason})
			case problem.reason != "":
				o.Warnings = append(o.Warnings, ledger.ImportProblem{File: base, Line: n, Reason: problem.reason})
			default:
				*evs = append(*evs, ev)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("import: %s: %w", path, err)
		}
	}
}

// problem is why a line is not imported.
type problem struct {
	reason    string
	malformed bool
}

func malformed(format string, args ...any) problem {
	return problem{reason: fmt.Sprintf(format, args...), malformed: true}
}

// parseLine makes the event of one JSONL line.
func parseLine(base string, n int, line []byte) (imported, problem) {
	var l originalLine
	if err := json.Unmarshal(line, &l); err != nil {
		return imported{}, malformed("not a JSON object: %v", err)
	}
	at, err := parseOldTime(l.Timestamp)
	if err != nil {
		return imported{}, malformed("timestamp: %v", err)
	}
	port, ok := rawInt(l.Port)
	if !ok || ledger.CheckPort(port) != nil {
		return imported{}, malformed("port %s: want a number 1-65535", strings.TrimSpace(string(l.Port)))
	}
	pid, _ := rawInt(l.PID)
	e := ledger.Event{Port: port, Imported: &ledger.ImportSource{File: base, Line: n}}
	im := imported{content: line}
	switch strings.ToLower(l.Action) {
	case "allocate", "allocated":
		if l.ServiceName == "" {
			return imported{}, malformed("allocate without a service_name")
		}
		e.Type = ledger.EventAllocated
		e.Allocated = &ledger.Allocated{ServiceName: l.ServiceName, StartedBy: l.StartedBy, Purpose: l.Purpose, PID: pid}
	case "release", "released", "deallocate", "cleanup", "auto_cleanup", "auto_release":
		e.Type = ledger.EventReleased
		reason := l.Reason
		if reason == "" && l.Action != "release" && l.Action != "released" && l.Action != "deallocate" {
			reason = "cleaned up by the watchdog"
		}
		e.Released = &ledger.Released{Reason: reason, ReleasedBy: l.ReleasedBy, RequestCount: l.RequestCount, ErrorCount: l.ErrorCount}
		if l.DurationS != nil && *l.DurationS >= 0 && *l.DurationS < math.MaxInt64/1000 {
			e.Released.DurationMS = int64(math.Round(*l.DurationS * 1000))
			im.duration = true
		}
	case "register_pid", "pid_registered":
		if pid <= 0 {
			return imported{}, malformed("register_pid without a pid")
		}
		e.Type = ledger.EventPIDRegistered
		e.PIDRegistered = &ledger.PIDRegistered{PID: pid}
	case "health_change", "health", "health_changed":
		to, ok := oldHealth(cmp.Or(l.To, l.HealthStatus, l.Status))
		if !ok {
			return imported{}, problem{reason: fmt.Sprintf("%s without a known health state: skipped", l.Action)}
		}
		e.Type = ledger.EventHealthChanged
		e.HealthChanged = &ledger.HealthChanged{To: to, Reason: l.Reason}
	case "stats", "stats_reported":
		e.Type = ledger.EventStatsReported
		e.StatsReported = &ledger.StatsReported{RequestCount: max(l.RequestCount, 0), ErrorCount: max(l.ErrorCount, 0)}
	default:
		return imported{}, problem{reason: fmt.Sprintf("unknown action %q: skipped", l.Action)}
	}
	e.ID = importID(at, base, n, 1, line)
	im.ev = e
	return im, problem{}
}

// readRegistry makes the events of the registry's live allocations and
// marks the allocate lines of evs that it confirms.
func (o *Original) readRegistry(data []byte, evs []imported) []imported {
	entries, err := registryEntries(data)
	if err != nil {
		o.Malformed = append(o.Malformed, ledger.ImportProblem{File: RegistryFile, Line: err.line, Reason: err.reason})
		return evs
	}
	lastRelease := map[int]int64{}
	for _, im := range evs {
		if im.ev.Type == ledger.EventReleased {
			lastRelease[im.ev.Port] = max(lastRelease[im.ev.Port], int64(im.ev.ID.Time()))
		}
	}
	for _, en := range entries {
		bad := func(format string, args ...any) {
			o.Malformed = append(o.Malformed, ledger.ImportProblem{File: RegistryFile, Line: en.line, Reason: fmt.Sprintf(format, args...)})
		}
		var a originalAlloc
		if err := json.Unmarshal(en.raw, &a); err != nil {
			bad("allocation %q: %v", en.key, err)
			continue
		}
		port, ok := rawInt(a.Port)
		if !ok {
			p, err := strconv.Atoi(en.key)
			if err != nil {
				bad("allocation %q: no port", en.key)
				continue
			}
			port = p
		}
		if err := ledger.CheckPort(port); err != nil {
			bad("allocation %q: %s", en.key, ledger.ErrorMessage(err))
			continue
		}
		if a.ServiceName == "" {
			bad("allocation %q: no service_name", en.key)
			continue
		}
		at, perr := parseOldTime(a.AllocatedAt)
		if perr != nil {
			bad("allocation %q: allocated_at: %v", en.key, perr)
			continue
		}
		pid, _ := rawInt(a.PID)
		ms := at.UnixMilli()
		if r, ok := lastRelease[port]; ok && ms <= r {
			o.Warnings = append(o.Warnings, ledger.ImportProblem{File: RegistryFile, Line: en.line, Reason: fmt.Sprintf(
				"port %d (%s): the logs release it at %s, after its allocation: not live", port, a.ServiceName, ledger.FormatTime(time.UnixMilli(r)))})
			continue
		}
		// The logs' allocate line of the same allocation stands for it.
		matched := false
		for i := range evs {
			e := &evs[i].ev
			if e.Type == ledger.EventAllocated && e.Port == port && int64(e.ID.Time()) == ms && e.Allocated.ServiceName == a.ServiceName {
				evs[i].confirmed = true
				if e.Allocated.PID == 0 {
					p := *e.Allocated
					p.PID = pid
					e.Allocated = &p
				}
				matched = true
			}
		}
		src := &ledger.ImportSource{File: RegistryFile, Line: en.line}
		if !matched {
			evs = append(evs, imported{confirmed: true, content: en.raw, ev: ledger.Event{
				ID: importID(at, RegistryFile, en.line, 1, en.raw), Type: ledger.EventAllocated, Port: port, Imported: src,
				Allocated: &ledger.Allocated{ServiceName: a.ServiceName, StartedBy: a.StartedBy, Purpose: a.Purpose, PID: pid},
			}})
		}
		if h, ok := oldHealth(a.HealthStatus); ok && h != ledger.HealthStarting {
			evs = append(evs, imported{content: en.raw, ev: ledger.Event{
				ID: importID(at, RegistryFile, en.line, 2, en.raw), Type: ledger.EventHealthChanged, Port: port, Imported: src,
				HealthChanged: &ledger.HealthChanged{To: h, Reason: "health_status " + a.HealthStatus + " in the original registry"},
			}})
		}
		if a.RequestCount > 0 || a.ErrorCount > 0 {
			evs = append(evs, imported{content: en.raw, ev: ledger.Event{
				ID: importID(at, RegistryFile, en.line, 3, en.raw), Type: ledger.EventStatsReported, Port: port, Imported: src,
				StatsReported: &ledger.StatsReported{RequestCount: max(a.RequestCount, 0), ErrorCount: max(a.ErrorCount, 0)},
			}})
		}
	}
	return evs
}

// registryEntry is one allocation of the registry file, with its line.
type registryEntry struct {
	key  string
	line int
	raw  []byte
}

type entryError struct {
	line   int
	reason string
}

// registryEntries reads {"allocations": {"8000": {...}, ...}} and notes the
// line of each entry's key.
func registryEntries(data []byte) ([]registryEntry, *entryError) {
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	dec := json.NewDecoder(bytes.NewReader(data))
	fail := func(err error) *entryError {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return &entryError{line: lineAt(syn.Offset), reason: "not JSON: " + err.Error()}
		}
		return &entryError{line: lineAt(dec.InputOffset()), reason: err.Error()}
	}
	expect := func(want json.Delim) *entryError {
		t, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		if d, ok := t.(json.Delim); !ok || d != want {
			return &entryError{line: lineAt(dec.InputOffset()), reason: fmt.Sprintf("want %q, got %v", want, t)}
		}
		return nil
	}
	if err := expect('{'); err != nil {
		return nil, err
	}
	var out []registryEntry
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fail(err)
		}
		if key, _ := t.(string); key != "allocations" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fail(err)
			}
			continue
		}
		if err := expect('{'); err != nil {
			return nil, err
		}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return nil, fail(err)
			}
			key, _ := t.(string)
			line := lineAt(dec.InputOffset())
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, fail(err)
			}
			var compact bytes.Buffer
			if json.Compact(&compact, raw) == nil {
				raw = compact.Bytes()
			}
			out = append(out, registryEntry{key: key, line: line, raw: raw})
		}
		if err := expect('}'); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sequence walks the events in time order: it fills in what a line leaves
// out (health before a change, the duration of a release), and closes
// allocations that the files never release, as ReadOriginal says.
func (o *Original) sequence(evs []imported, hasReg bool) []ledger.Event {
	type holding struct {
		idx       int // in out
		confirmed bool
		health    ledger.Health
		lastMS    int64
		content   []byte
	}
	held := map[int]*holding{}
	out := make([]ledger.Event, 0, len(evs))
	release := func(h *holding, port int, ms int64, line int, content []byte, sub byte, reason string) {
		alloc := out[h.idx]
		at := time.UnixMilli(ms)
		e := ledger.Event{
			ID: importID(at, alloc.Imported.File, line, sub, content), Type: ledger.EventReleased, Port: port,
			Imported: alloc.Imported,
			Released: &ledger.Released{Reason: reason, ReleasedBy: "import", DurationMS: ms - int64(alloc.ID.Time())},
		}
		out = append(out, e)
		o.Warnings = append(o.Warnings, ledger.ImportProblem{File: alloc.Imported.File, Line: alloc.Imported.Line,
			Reason: fmt.Sprintf("port %d (%s): %s: released at %s by the import", port, alloc.Allocated.ServiceName, reason, ledger.FormatTime(at))})
	}
	for _, im := range evs {
		e := im.ev
		ms := int64(e.ID.Time())
		h := held[e.Port]
		switch e.Type {
		case ledger.EventAllocated:
			if h != nil {
				release(h, e.Port, ms, e.Imported.Line, im.content, 0, "allocated again without a release in the original log")
			}
			held[e.Port] = &holding{idx: len(out), confirmed: im.confirmed, health: ledger.HealthStarting, lastMS: ms, content: im.content}
		case ledger.EventReleased:
			if h != nil {
				if !im.duration {
					p := *e.Released
					p.DurationMS = ms - int64(out[h.idx].ID.Time())
					e.Released = &p
				}
				delete(held, e.Port)
			}
		case ledger.EventHealthChanged:
			from := ledger.HealthStarting
			if h != nil {
				from = h.health
			}
			if from == e.HealthChanged.To {
				continue // not a change
			}
			p := *e.HealthChanged
			p.From = from
			e.HealthChanged = &p
			if h != nil {
				h.health = p.To
			}
		}
		if h := held[e.Port]; h != nil {
			h.lastMS = ms
		}
		out = append(out, e)
	}
	ports := make([]int, 0, len(held))
	for p := range held {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	end := o.End.UnixMilli()
	for _, p := range ports {
		h := held[p]
		if hasReg && !h.confirmed {
			release(h, p, h.lastMS+1, out[h.idx].Imported.Line, h.content, 4, "not in the original registry")
			continue
		}
		release(h, p, max(end, h.lastMS+1), out[h.idx].Imported.Line, h.content, 5, "end of the original records")
	}
	slices.SortFunc(out, func(a, b ledger.Event) int { return a.ID.Compare(b.ID) })
	return out
}

// importID derives an imported event's ID from its source, as ReadOriginal
// describes.
func importID(at time.Time, base string, line int, sub byte, content []byte) ulid.ULID {
	var id ulid.ULID
	_ = id.SetTime(uint64(max(at.UnixMilli(), 0)))
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", base, line)
	h.Write(content)
	sum := h.Sum(nil)
	binary.BigEndian.PutUint32(id[6:10], uint32(line))
	id[10] = sub
	copy(id[11:], sum[:5])
	return id
}

// parseOldTime reads the original port manager's timestamps: RFC 3339, or
// ISO 8601 without a zone (local time).
func parseOldTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("missing")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return checkOldTime(t, s)
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return checkOldTime(t, s)
		}
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 or ISO 8601", s)
}

func checkOldTime(t time.Time, s string) (time.Time, error) {
	if t.UnixMilli() < 0 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("%q: out of range", s)
	}
	return t, nil
}

// rawInt reads a JSON number or a string of digits; ok is false for
// anything else, null and absent included.
func rawInt(raw json.RawMessage) (int, bool) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, false
	}
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<31 {
			return 0, false
		}
		n = int(f)
	}
	return n, true
}

// oldHealth maps the original port manager's health words.
func oldHealth(s string) (ledger.Health, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "active", "healthy", "ok":
		return ledger.HealthHealthy, true
	case "starting":
		return ledger.HealthStarting, true
	case "unhealthy", "degraded", "unresponsive":
		return ledger.HealthUnhealthy, true
	case "dead", "down", "stopped":
		return ledger.HealthDead, true
	}
	return "", false
}
