package main

import (
	"context"
	"fmt"
	"github.com/portledger/portledger/internal/proc"
	"io"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/watchdog"
)

// whyAnswer is `ledger why PORT --json`: the OS's view of a port, the
// ledger's, and the verdict when they disagree.
type whyAnswer struct {
	Port int `json:"port"`
	// Sockets are the TCP listeners and UDP sockets on the port now.
	Sockets []watchdog.Socket `json:"sockets"`
	// Processes describe the owners of those sockets, by pid.
	Processes []whyProcess `json:"processes"`
	// Container names the docker container behind a docker-proxy.
	Container *whyContainer `json:"container,omitempty"`
	// Range is the ledger's managed range; Managed says the port is in it.
	Range   string `json:"range"`
	Managed bool   `json:"managed"`
	// Holder is the ledger's allocation of the port now, if any.
	Holder *ledger.Allocation `json:"holder,omitempty"`
	// Before are the port's earlier tenures, newest first (at most 3).
	Before []ledger.Tenure `json:"before"`
	// Verdict is one word: free, agree, foreign, other_pid,
	// not_listening, unknown_owner.
	Verdict string `json:"verdict"`
	// Explanation says what the verdict means, Advice what to do.
	Explanation string `json:"explanation"`
	Advice      string `json:"advice,omitempty"`
}

// whyProcess is what the OS says about one process that holds the port.
type whyProcess struct {
	PID       int        `json:"pid"`
	Name      string     `json:"name"`
	Cmdline   string     `json:"cmdline"`
	User      string     `json:"user,omitempty"`
	Cwd       string     `json:"cwd,omitempty"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	PPID      int        `json:"ppid,omitempty"`
}

// whyHistory is how many earlier tenures `why` shows.
const whyHistory = 3

func runWhy(ctx context.Context, e *env, args []string) error {
	var c common
	fs := newFlags(e, "why", "why PORT [--json]", `
Say what is on a port, as the OS sees it and as the ledger sees it, side by
side: the TCP listeners (IPv4 and IPv6) and UDP sockets on the port with
their process (pid, command, user, working directory, start time), the
docker container behind a docker-proxy (when docker answers on its socket),
the ledger's holder (service, since, pid, health) and the earlier holders
with why they let go. When the two views disagree, it says which one is
wrong and what to do: a foreign listener the ledger did not hand the port
to, a port allocated to one pid while another listens, or a port allocated
while nothing listens.`, &c, true)
	pos, err := parseInterleaved(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("why takes one port, e.g. ledger why 8003")
	}
	port, err := parsePort(pos[0])
	if err != nil {
		return err
	}
	ans := whyAnswer{Port: port, Sockets: []watchdog.Socket{}, Processes: []whyProcess{}, Before: []ledger.Tenure{}}
	// The OS first: a listener that appears while the ledger is read is
	// then seen by both.
	socks, err := watchdog.PortSockets(ctx, port)
	if err != nil {
		return fmt.Errorf("list the sockets on port %d: %w", port, err)
	}
	ans.Sockets = socks
	ans.Processes = describeOwners(ctx, socks)
	ans.Container = dockerBehind(ctx, e.getenv, port, ans.Processes)

	b, err := connect(ctx, &c)
	if err != nil {
		return err
	}
	err = ans.readLedger(ctx, b)
	if err = closeWith(b, err); err != nil {
		return err
	}
	ans.judge(ctx)
	if c.json {
		return printJSON(e.stdout, ans)
	}
	return ans.print(e.stdout)
}

// readLedger fills in the ledger's view: range, holder, earlier tenures.
func (a *whyAnswer) readLedger(ctx context.Context, svc ledger.Service) error {
	st, err := svc.Status(ctx, ulid.Zero)
	if err != nil {
		return err
	}
	a.Range = st.PortManager.PortRange
	if r, err := ledger.ParseRange(a.Range); err == nil {
		a.Managed = r.Contains(a.Port)
	}
	for _, al := range st.PortManager.Allocations {
		if al.Port == a.Port {
			al := al
			a.Holder = &al
		}
	}
	evs, err := svc.History(ctx, ledger.HistoryQuery{Port: a.Port})
	if err != nil {
		return err
	}
	a.Before = tenures(evs, whyHistory)
	return nil
}

// tenures folds a port's events into its ended tenures, newest first, at
// most n of them.
func tenures(evs []ledger.Event, n int) []ledger.Tenure {
	var out []ledger.Tenure
	var cur *ledger.Tenure
	for _, ev := range evs {
		switch {
		case ev.Allocated != nil:
			p := ev.Allocated
			cur = &ledger.Tenure{Allocation: ledger.Allocation{
				Port: ev.Port, ServiceName: p.ServiceName, StartedBy: p.StartedBy, Purpose: p.Purpose,
				PID: p.PID, AllocatedAt: ev.At, EventID: ev.ID,
			}}
		case ev.PIDRegistered != nil && cur != nil:
			cur.Allocation.PID = ev.PIDRegistered.PID
		case ev.Released != nil && cur != nil:
			r := ev.Released
			cur.Release = &ledger.Release{EventID: ev.ID, At: ev.At, Reason: r.Reason, ReleasedBy: r.ReleasedBy,
				Duration: ledger.Duration(time.Duration(r.DurationMS) * time.Millisecond)}
			out = append(out, *cur)
			cur = nil
		}
	}
	// Newest first, the last n.
	if len(out) > n {
		out = out[len(out)-n:]
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if out == nil {
		out = []ledger.Tenure{}
	}
	return out
}

// describeOwners asks the OS about each process that owns a socket.
func describeOwners(ctx context.Context, socks []watchdog.Socket) []whyProcess {
	out := []whyProcess{}
	seen := map[int]bool{}
	for _, s := range socks {
		if s.PID == 0 || seen[s.PID] {
			continue
		}
		seen[s.PID] = true
		out = append(out, describeProcess(ctx, s.PID))
	}
	return out
}

// describeProcess reads a process's command, user, working directory, start
// time and parent. What the OS will not tell (another user's process) is
// left empty.
func describeProcess(ctx context.Context, pid int) whyProcess {
	wp := whyProcess{PID: pid}
	p, err := proc.Open(ctx, pid)
	if err != nil {
		return wp
	}
	wp.Name, _ = p.NameWithContext(ctx)
	wp.Cmdline, _ = p.CmdlineWithContext(ctx)
	wp.User, _ = p.UsernameWithContext(ctx)
	wp.Cwd, _ = p.CwdWithContext(ctx)
	if ms, err := p.CreateTimeWithContext(ctx); err == nil {
		t := time.UnixMilli(ms).UTC()
		wp.StartedAt = &t
	}
	if pp, err := p.PpidWithContext(ctx); err == nil {
		wp.PPID = int(pp)
	}
	return wp
}

// descendsFrom reports whether pid is ancestor or one of its descendants
// (a shell or a supervisor may hold the allocation while its child listens).
func descendsFrom(ctx context.Context, pid, ancestor int) bool {
	for range 32 {
		if pid == ancestor {
			return true
		}
		if pid <= 1 {
			return false
		}
		p, err := proc.Open(ctx, pid)
		if err != nil {
			return false
		}
		pp, err := p.PpidWithContext(ctx)
		if err != nil {
			return false
		}
		pid = int(pp)
	}
	return false
}

// judge compares the two views and says which one is wrong.
func (a *whyAnswer) judge(ctx context.Context) {
	h := a.Holder
	listeners := map[int]bool{}
	unknown := false
	for _, s := range a.Sockets {
		if s.PID == 0 {
			unknown = true
			continue
		}
		listeners[s.PID] = true
	}
	outside := ""
	if !a.Managed {
		outside = fmt.Sprintf(" Port %d is outside the ledger's range %s: the ledger never hands it out.", a.Port, a.Range)
	}
	switch {
	case h == nil && len(a.Sockets) == 0 && a.Container != nil:
		a.Verdict = "foreign"
		a.Explanation = fmt.Sprintf("not allocated by the ledger: docker container %s publishes it (through the firewall: nothing listens on it here).%s", escapeN(a.Container.Name, 100), outside)
	case h == nil && len(a.Sockets) == 0:
		a.Verdict = "free"
		a.Explanation = "free: the ledger holds nothing here and nothing listens." + outside
	case h == nil:
		a.Verdict = "foreign"
		a.Explanation = "not allocated by the ledger: a foreign listener (" + a.ownersText() + ")." + outside
		if a.Managed {
			a.Advice = "The ledger will not hand this port out while it listens. If it is yours, stop it, or run it with `ledger run` so the ledger knows it."
		}
	case len(a.Sockets) == 0:
		a.Verdict = "not_listening"
		a.Explanation = fmt.Sprintf("allocated to %s%s but nothing listens.", h.ServiceName, pidNote(h.PID))
		if age := time.Since(h.AllocatedAt); age < watchdog.DefaultStartGrace {
			a.Explanation += fmt.Sprintf(" It was allocated %s ago: it may still be starting.", age.Round(time.Second))
		}
		a.Advice = fmt.Sprintf("If %s has stopped, free the port: ledger release %d", h.ServiceName, a.Port)
	case h.PID == 0 && unknown && len(listeners) == 0:
		a.Verdict = "unknown_owner"
		a.Explanation = fmt.Sprintf("allocated to %s (no pid recorded); something listens whose process this user may not see.", h.ServiceName)
	case h.PID == 0:
		a.Verdict = "agree"
		a.Explanation = fmt.Sprintf("allocated to %s (no pid recorded); %s listens.", h.ServiceName, a.ownersText())
		if len(listeners) == 1 {
			for pid := range listeners {
				a.Advice = fmt.Sprintf("If that is %s, record it: ledger register-pid %d %d", h.ServiceName, a.Port, pid)
			}
		}
	default:
		for pid := range listeners {
			if descendsFrom(ctx, pid, h.PID) {
				a.Verdict = "agree"
				a.Explanation = fmt.Sprintf("held by %s (pid %d), which listens.", h.ServiceName, h.PID)
				return
			}
		}
		if len(listeners) == 0 {
			a.Verdict = "unknown_owner"
			a.Explanation = fmt.Sprintf("allocated to %s (pid %d); something listens whose process this user may not see.", h.ServiceName, h.PID)
			return
		}
		a.Verdict = "other_pid"
		a.Explanation = fmt.Sprintf("allocated to pid %d (%s) but %s listens.", h.PID, h.ServiceName, a.ownersText())
		if _, err := proc.Open(ctx, h.PID); err != nil {
			a.Explanation += fmt.Sprintf(" Pid %d is gone: the ledger is stale.", h.PID)
			a.Advice = fmt.Sprintf("Free the stale allocation (ledger release %d), then stop the listener or allocate the port to its service.", a.Port)
		} else {
			a.Advice = fmt.Sprintf("If the listener serves %s, record it: ledger register-pid %d PID; otherwise it is a foreign listener on a held port: stop it.", h.ServiceName, a.Port)
		}
	}
}

// ownersText names the owners of the sockets: "pid 4242 (python3 serve.py)".
func (a *whyAnswer) ownersText() string {
	var parts []string
	for _, p := range a.Processes {
		parts = append(parts, fmt.Sprintf("pid %d (%s)", p.PID, escapeN(commandOf(p), 60)))
	}
	for _, s := range a.Sockets {
		if s.PID == 0 {
			parts = append(parts, "a process this user may not see")
			break
		}
	}
	return strings.Join(parts, ", ")
}

func commandOf(p whyProcess) string {
	if p.Cmdline != "" {
		return p.Cmdline
	}
	if p.Name != "" {
		return p.Name
	}
	return "?"
}

func (a *whyAnswer) print(w io.Writer) error {
	fmt.Fprintf(w, "Port %d\n\nThe OS:\n", a.Port)
	var tcp, udp []string
	for _, s := range a.Sockets {
		if s.Proto == "tcp" {
			tcp = append(tcp, s.Endpoint())
		} else {
			udp = append(udp, s.Endpoint())
		}
	}
	if len(a.Sockets) == 0 {
		fmt.Fprintln(w, "  nothing listens (tcp -, udp -)")
	} else {
		fmt.Fprintf(w, "  listening now: tcp %s, udp %s\n", listOrDash(tcp), listOrDash(udp))
	}
	for _, p := range a.Processes {
		fmt.Fprintf(w, "  pid %d: %s\n", p.PID, escapeN(commandOf(p), 200))
		if p.User != "" {
			fmt.Fprintf(w, "    user:    %s\n", escapeN(p.User, 64))
		}
		if p.Cwd != "" {
			fmt.Fprintf(w, "    cwd:     %s\n", escapeN(p.Cwd, 200))
		}
		if p.StartedAt != nil {
			fmt.Fprintf(w, "    started: %s\n", localTime(*p.StartedAt))
		}
	}
	if c := a.Container; c != nil {
		fmt.Fprintf(w, "  in a container: %s\n", escapeN(c.describe(), 200))
	}
	fmt.Fprintf(w, "\nThe ledger (range %s):\n", a.Range)
	if h := a.Holder; h != nil {
		pid := "no pid"
		if h.PID != 0 {
			pid = fmt.Sprintf("pid %d", h.PID)
		}
		fmt.Fprintf(w, "  held by %s since %s (%s, %s)\n", escapeN(h.ServiceName, 100), localTime(h.AllocatedAt), pid, h.HealthStatus)
	} else {
		fmt.Fprintln(w, "  not allocated")
	}
	for i, t := range a.Before {
		lead := "  before: "
		if i > 0 {
			lead = "          "
		}
		r := t.Release
		fmt.Fprintf(w, "%s%s %s - %s, released %q\n", lead, escapeN(t.Allocation.ServiceName, 100),
			localTime(t.Allocation.AllocatedAt), localTime(r.At), escapeN(r.Reason, 120))
	}
	fmt.Fprintf(w, "\nVerdict: %s\n", a.Explanation)
	if a.Advice != "" {
		fmt.Fprintf(w, "To do: %s\n", a.Advice)
	}
	return nil
}

func listOrDash(xs []string) string {
	if len(xs) == 0 {
		return "-"
	}
	return strings.Join(xs, " and ")
}

func pidNote(pid int) string {
	if pid == 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", pid)
}
