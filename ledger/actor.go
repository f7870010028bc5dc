package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// Via says how a write reached the ledger.
type Via string

// The ways a write arrives. The names are part of the log and the API.
const (
	// ViaSocket is a request over the daemon's unix socket: the actor's
	// uid and pid come from the kernel (SO_PEERCRED) and cannot be forged.
	ViaSocket Via = "socket"
	// ViaTCP is a request over the TCP listener: the actor is the name of
	// the bearer token it carried ("" on an open route without a token).
	ViaTCP Via = "tcp"
	// ViaLocal is the CLI writing the log file itself, with no daemon: the
	// actor is the CLI's own uid and pid.
	ViaLocal Via = "local"
	// ViaWatchdog is the daemon's own watchdog (a health change, a release
	// of a dead holder, a conflict): uid and pid are the daemon's.
	ViaWatchdog Via = "watchdog"
)

var viaCodes = map[Via]byte{ViaSocket: 1, ViaTCP: 2, ViaLocal: 3, ViaWatchdog: 4}
var codeVias = [...]Via{1: ViaSocket, 2: ViaTCP, 3: ViaLocal, 4: ViaWatchdog}

// Actor is who asked for a write. The writer stamps it on every event of the
// command, from the request's context (see WithActor). It is what the
// transport knows, never what the caller claims: started_by and released_by
// are the caller's words, the actor is the kernel's or the token's.
//
// In JSON it is an object, e.g. {"via": "socket", "uid": 1000, "pid": 4242}
// or {"via": "tcp", "token": "default"}; uid is absent when unknown.
type Actor struct {
	Via   Via
	UID   int    // the caller's user id; -1 when unknown (TCP)
	PID   int    // the caller's process id; 0 when unknown
	Token string // over TCP, the name of the bearer token; "" without one
}

// Limits of what the codec stores for an actor.
const (
	maxActorUID   = 1<<32 - 1
	maxActorPID   = 1<<31 - 1
	maxActorToken = 64
)

// Validate reports whether a can be stored.
func (a Actor) Validate() error {
	if _, ok := viaCodes[a.Via]; !ok {
		return fmt.Errorf("actor: unknown via %q", a.Via)
	}
	if a.UID < -1 || a.UID > maxActorUID {
		return fmt.Errorf("actor: uid %d out of range", a.UID)
	}
	if a.PID < 0 || a.PID > maxActorPID {
		return fmt.Errorf("actor: pid %d out of range", a.PID)
	}
	if len(a.Token) > maxActorToken {
		return fmt.Errorf("actor: token name longer than %d bytes", maxActorToken)
	}
	return nil
}

// String renders a for people: "uid 1000 pid 4242 (socket)",
// "token default (tcp)".
func (a Actor) String() string {
	s := ""
	if a.Token != "" {
		s = "token " + a.Token
	}
	if a.UID >= 0 {
		if s != "" {
			s += " "
		}
		s += "uid " + strconv.Itoa(a.UID)
	}
	if a.PID > 0 {
		if s != "" {
			s += " "
		}
		s += "pid " + strconv.Itoa(a.PID)
	}
	if s == "" {
		return string(a.Via)
	}
	return s + " (" + string(a.Via) + ")"
}

type actorJSON struct {
	Via   Via    `json:"via"`
	UID   *int   `json:"uid,omitempty"`
	PID   int    `json:"pid,omitempty"`
	Token string `json:"token,omitempty"`
}

// MarshalJSON renders {"via", "uid", "pid", "token"}, leaving out what is
// unknown.
func (a Actor) MarshalJSON() ([]byte, error) {
	j := actorJSON{Via: a.Via, PID: a.PID, Token: a.Token}
	if a.UID >= 0 {
		uid := a.UID
		j.UID = &uid
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the form MarshalJSON writes.
func (a *Actor) UnmarshalJSON(b []byte) error {
	var j actorJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*a = Actor{Via: j.Via, UID: -1, PID: j.PID, Token: j.Token}
	if j.UID != nil {
		a.UID = *j.UID
	}
	return nil
}

type actorKey struct{}

// WithActor returns ctx carrying a, for the writer to stamp on the events
// of the commands made with it.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor that ctx carries, if any.
func ActorFrom(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return a, ok
}
