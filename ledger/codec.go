package ledger

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
)

// The event codec.
//
// Events are stored in bbolt in a compact, hand-written binary form, and
// turned into JSON only at the edges (API, --json, JSONL logs). The reason is
// replay speed: the registry is a fold over every event, and decoding a
// million events with the reflection-based encoding/json takes about 5 s on
// the development machine, while this decoder reads a field at a time with
// no reflection and allocates only the strings and the payload struct.
//
// Layout of a value (the key is the 16-byte ULID, which also gives the time):
//
//	byte    schema version (codecVersion)
//	byte    event type code (see typeCodes)
//	byte    flags (bit 0: imported source follows the payload;
//	        bit 1: the actor follows; bit 2: a pid_registered reason
//	        follows; bits 6 and 7 belong to the hash chain, see chain.go)
//	uvarint port
//	payload fields in a fixed order per type (see appendPayload)
//	[imported: string file, uvarint line]
//	[actor: byte via code, uvarint uid+1 (0: unknown), uvarint pid, string token]
//	[reason: string, why a pid was registered when not by its caller]
//
// Strings are a uvarint length and the bytes; signed integers are zig-zag
// varints. A later schema version may add fields at the end of a payload;
// the decoder switches on the version byte, so old events stay readable.
const codecVersion = 1

const (
	flagImported = 1 << 0
	flagActor    = 1 << 1
	flagReason   = 1 << 2
)

var typeCodes = map[EventType]byte{
	EventAllocated:        1,
	EventPIDRegistered:    2,
	EventHealthChanged:    3,
	EventStatsReported:    4,
	EventReleased:         5,
	EventConflictDetected: 6,
	EventRangeChanged:     7,
	EventChainAccepted:    8,
}

var codeTypes = [...]EventType{
	1: EventAllocated,
	2: EventPIDRegistered,
	3: EventHealthChanged,
	4: EventStatsReported,
	5: EventReleased,
	6: EventConflictDetected,
	7: EventRangeChanged,
	8: EventChainAccepted,
}

// maxLeaseMS is the longest lease, in milliseconds, that a time.Duration holds.
const maxLeaseMS = int64(1<<63-1) / int64(time.Millisecond)

var healthCodes = map[Health]byte{"": 0, HealthStarting: 1, HealthHealthy: 2, HealthUnhealthy: 3, HealthDead: 4}
var codeHealths = [...]Health{"", HealthStarting, HealthHealthy, HealthUnhealthy, HealthDead}

// AppendEncoded appends the binary form of e (without its ID) to b. It
// returns b unchanged and an error if e's payload does not match its type.
func AppendEncoded(b []byte, e *Event) ([]byte, error) {
	start := len(b)
	code, ok := typeCodes[e.Type]
	if !ok {
		return b, fmt.Errorf("encode event: unknown type %q", e.Type)
	}
	var flags byte
	if e.Imported != nil {
		flags |= flagImported
	}
	if e.Actor != nil {
		if err := e.Actor.Validate(); err != nil {
			return b, fmt.Errorf("encode event: %w", err)
		}
		flags |= flagActor
	}
	if e.PIDRegistered != nil && e.PIDRegistered.Reason != "" {
		flags |= flagReason
	}
	if e.Port < 0 || e.Port > MaxPort {
		return b, fmt.Errorf("encode event: port %d out of range", e.Port)
	}
	b = append(b, codecVersion, code, flags)
	b = binary.AppendUvarint(b, uint64(e.Port))
	switch e.Type {
	case EventAllocated:
		p := e.Allocated
		if p == nil {
			return b[:start], errNoPayload(e.Type)
		}
		b = appendString(b, p.ServiceName)
		b = appendString(b, p.StartedBy)
		b = appendString(b, p.Purpose)
		b = binary.AppendVarint(b, int64(p.PID))
		b = binary.AppendVarint(b, p.PIDStarted)
		b = appendString(b, p.HealthURL)
		b = binary.AppendVarint(b, p.Lease.Milliseconds())
	case EventPIDRegistered:
		p := e.PIDRegistered
		if p == nil {
			return b[:start], errNoPayload(e.Type)
		}
		b = binary.AppendVarint(b, int64(p.PID))
		b = binary.AppendVarint(b, p.PIDStarted)
		b = appendString(b, p.Cmdline)
	case EventHealthChanged:
		p := e.HealthChanged
		if p == nil {
			return b[:start], errNoPayload(e.Type)
		}
		from, okFrom := healthCodes[p.From]
		to, okTo := healthCodes[p.To]
		if !okFrom || !okTo {
			return b[:start], fmt.Errorf("encode event: unknown health %q -> %q", p.From, p.To)
		}
		b = append(b, from, to)
		b = appendString(b, p.Reason)
		var bits byte
		if p.Alive {
			bits |= 1
		}
		if p.Listening {
			bits |= 2
		}
		b = append(b, bits)
		b = appendString(b, p.Endpoint)
	case EventStatsReported:
		p := e.StatsReported
		if p == nil {
			return b[:start], errNoPayload(e.Type)
		}
		b = binary.AppendVarint(b, p.RequestCount)
		b = binary.AppendVarint(b, p.ErrorCount)
	case EventReleased:
		p := e.Released
		if p == nil {
			return b[:start], errNoPayload(e.Type)
		}
		b = appendString(b, p.Reason)
		b = appendString(b, p.ReleasedBy)
		b = binary.AppendVarint(b, p.DurationMS)
		b = binary.AppendVarint(b, p.RequestCount)
		b = binary.AppendVarint(b, p.ErrorCount)
	case EventConflictDetected:
		p := e.Conflict
		if p == nil {
			return b[:start], errNoPayload(e.Type)
		}
		b = binary.AppendVarint(b, int64(p.PID))
		b = appendString(b, p.Command)
	case EventRangeChanged:
		p := e.RangeChanged
		if p == nil {
			return b[:start], errNoPayload(e.Type)
		}
		for _, v := range []int{p.From.Lo, p.From.Hi, p.To.Lo, p.To.Hi} {
			b = binary.AppendUvarint(b, uint64(v))
		}
	case EventChainAccepted:
		p := e.ChainAccepted
		if p == nil {
			return b[:start], errNoPayload(e.Type)
		}
		b = binary.AppendUvarint(b, uint64(p.Breaks))
		b = append(b, p.EventID[:]...)
		b = binary.AppendUvarint(b, p.Seq)
		b = appendString(b, p.Problem)
		b = appendString(b, p.AcceptedBy)
	}
	if e.Imported != nil {
		b = appendString(b, e.Imported.File)
		b = binary.AppendUvarint(b, uint64(e.Imported.Line))
	}
	if a := e.Actor; a != nil {
		b = append(b, viaCodes[a.Via])
		b = binary.AppendUvarint(b, uint64(a.UID+1))
		b = binary.AppendUvarint(b, uint64(a.PID))
		b = appendString(b, a.Token)
	}
	if flags&flagReason != 0 {
		b = appendString(b, e.PIDRegistered.Reason)
	}
	return b, nil
}

func errNoPayload(t EventType) error {
	return fmt.Errorf("encode event: %s event without its payload", t)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DecodeEvent decodes a stored value. The returned event owns all its
// memory, so it outlives the bbolt transaction that produced b.
func DecodeEvent(id ulid.ULID, b []byte) (Event, error) {
	d := decoder{b: b}
	e := Event{ID: id, At: time.UnixMilli(int64(id.Time())).UTC()}
	version := d.byte()
	if version != codecVersion {
		return Event{}, fmt.Errorf("decode event %s: unknown schema version %d: %w", id, version, ErrCorrupt)
	}
	code := d.byte()
	if int(code) >= len(codeTypes) || codeTypes[code] == "" {
		return Event{}, fmt.Errorf("decode event %s: unknown type code %d: %w", id, code, ErrCorrupt)
	}
	e.Type = codeTypes[code]
	flags := d.byte()
	port := d.uvarint()
	if port > MaxPort {
		return Event{}, fmt.Errorf("decode event %s: port %d out of range: %w", id, port, ErrCorrupt)
	}
	e.Port = int(port)
	switch e.Type {
	case EventAllocated:
		p := &Allocated{}
		p.ServiceName = d.string()
		p.StartedBy = d.string()
		p.Purpose = d.string()
		p.PID = int(d.varint())
		p.PIDStarted = d.varint()
		p.HealthURL = d.string()
		lease := d.varint()
		if lease > maxLeaseMS || lease < -maxLeaseMS {
			return Event{}, fmt.Errorf("decode event %s: lease %d ms out of range: %w", id, lease, ErrCorrupt)
		}
		p.Lease = time.Duration(lease) * time.Millisecond
		e.Allocated = p
	case EventPIDRegistered:
		p := &PIDRegistered{}
		p.PID = int(d.varint())
		p.PIDStarted = d.varint()
		p.Cmdline = d.string()
		e.PIDRegistered = p
	case EventHealthChanged:
		p := &HealthChanged{}
		p.From = d.health()
		p.To = d.health()
		p.Reason = d.string()
		bits := d.byte()
		p.Alive = bits&1 != 0
		p.Listening = bits&2 != 0
		p.Endpoint = d.string()
		e.HealthChanged = p
	case EventStatsReported:
		p := &StatsReported{}
		p.RequestCount = d.varint()
		p.ErrorCount = d.varint()
		e.StatsReported = p
	case EventReleased:
		p := &Released{}
		p.Reason = d.string()
		p.ReleasedBy = d.string()
		p.DurationMS = d.varint()
		p.RequestCount = d.varint()
		p.ErrorCount = d.varint()
		e.Released = p
	case EventConflictDetected:
		p := &ConflictDetected{}
		p.PID = int(d.varint())
		p.Command = d.string()
		e.Conflict = p
	case EventRangeChanged:
		p := &RangeChanged{}
		p.From.Lo = int(d.uvarint())
		p.From.Hi = int(d.uvarint())
		p.To.Lo = int(d.uvarint())
		p.To.Hi = int(d.uvarint())
		e.RangeChanged = p
	case EventChainAccepted:
		p := &ChainAccepted{}
		p.Breaks = int(d.uvarint())
		for i := range p.EventID {
			p.EventID[i] = d.byte()
		}
		p.Seq = d.uvarint()
		p.Problem = d.string()
		p.AcceptedBy = d.string()
		e.ChainAccepted = p
	}
	if flags&flagImported != 0 {
		e.Imported = &ImportSource{File: d.string(), Line: int(d.uvarint())}
	}
	if flags&flagActor != 0 {
		a, err := d.actor()
		if err != nil {
			return Event{}, fmt.Errorf("decode event %s: %v: %w", id, err, ErrCorrupt)
		}
		e.Actor = &a
	}
	if flags&flagReason != 0 {
		if e.PIDRegistered == nil {
			return Event{}, fmt.Errorf("decode event %s: a reason on a %s event: %w", id, e.Type, ErrCorrupt)
		}
		e.PIDRegistered.Reason = d.string()
	}
	if d.err {
		return Event{}, fmt.Errorf("decode event %s: truncated value: %w", id, ErrCorrupt)
	}
	return e, nil
}

// decoder reads fields off a byte slice; a read past the end sets err and
// returns zero values, so callers check once at the end.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = true
		d.b = nil
		return ""
	}
	if n == 0 {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) actor() (Actor, error) {
	c := d.byte()
	uid := d.uvarint()
	pid := d.uvarint()
	token := d.string()
	if d.err {
		return Actor{}, fmt.Errorf("truncated actor")
	}
	if int(c) >= len(codeVias) || codeVias[c] == "" {
		return Actor{}, fmt.Errorf("unknown actor via code %d", c)
	}
	if uid > maxActorUID+1 || pid > maxActorPID || len(token) > maxActorToken {
		return Actor{}, fmt.Errorf("actor out of range")
	}
	return Actor{Via: codeVias[c], UID: int(uid) - 1, PID: int(pid), Token: token}, nil
}

func (d *decoder) health() Health {
	c := d.byte()
	if int(c) >= len(codeHealths) {
		d.err = true
		return ""
	}
	return codeHealths[c]
}
