package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/portledger/portledger/ledger"
	"github.com/portledger/portledger/projection"
)

// Allocate hands a port to a service: the preferred port if one is asked for
// and free, else the port the service held last if it is free (sticky), else
// the lowest free port of the range. A port is free when no allocation holds
// it, no foreign listener was recorded on it, and the OS lets us bind it.
func (l *Ledger) Allocate(ctx context.Context, req ledger.AllocateRequest) (ledger.Allocation, error) {
	a, err := l.allocate(ctx, req)
	if err != nil {
		l.cfg.Observer.AllocateRefused(ledger.ErrorCode(err))
	}
	return a, err
}

func (l *Ledger) allocate(ctx context.Context, req ledger.AllocateRequest) (ledger.Allocation, error) {
	if err := validateAllocate(req); err != nil {
		return ledger.Allocation{}, err
	}
	payload := &ledger.Allocated{
		ServiceName: req.ServiceName,
		StartedBy:   req.StartedBy,
		Purpose:     req.Purpose,
		HealthURL:   req.HealthURL,
		Lease:       time.Duration(req.Lease * float64(time.Second)),
	}
	if req.PID != 0 {
		info, err := l.cfg.Process(req.PID)
		if err != nil {
			return ledger.Allocation{}, err
		}
		if err := checkServicePID(ctx, info); err != nil {
			return ledger.Allocation{}, err
		}
		payload.PID, payload.PIDStarted = info.PID, info.StartedAt
	}
	sub, _ := within(req) // validated above
	// Ask the OS about the port the writer will most likely choose here,
	// on the caller's goroutine, so that the single writer does not spend
	// its time in bind calls. The writer trusts this answer only for that
	// port; any other choice it probes itself.
	l.mu.RLock()
	cand := firstCandidate(l.reg, req, sub)
	l.mu.RUnlock()
	probed := 0
	if cand != 0 && l.portFree(cand, req.Proto) == nil {
		probed = cand
	}
	res, err := l.submit(ctx, &request{decide: func(draft *projection.Registry, now time.Time) ([]ledger.Event, error) {
		port, err := l.choosePort(draft, req, sub, probed)
		if err != nil {
			return nil, err
		}
		p := payload
		if req.HealthPath != "" {
			withURL := *payload
			withURL.HealthURL = healthURLFor(port, req.HealthPath)
			p = &withURL
		}
		return []ledger.Event{{Type: ledger.EventAllocated, Port: port, Allocated: p}}, nil
	}})
	if err != nil {
		return ledger.Allocation{}, err
	}
	if res.alloc == nil {
		return ledger.Allocation{}, ledger.Errorf(ledger.EINTERNAL, "allocation vanished after commit")
	}
	return *res.alloc, nil
}

// firstCandidate returns the port choosePort tries first, judged by the
// registry alone (0 when there is none): the preferred port, else the
// service's last port, else the lowest port nobody holds. sub, when not
// zero, is the part of the range the request chooses from.
func firstCandidate(reg *projection.Registry, req ledger.AllocateRequest, sub ledger.Range) int {
	span := reg.Range
	if sub != (ledger.Range{}) {
		span = sub
	}
	usable := func(p int) bool {
		if ledger.BrowserBadPort(p) && p != req.Port {
			return false
		}
		_, squat := reg.Conflicts[p]
		return reg.Range.Contains(p) && span.Contains(p) && reg.Allocs[p] == nil && !squat
	}
	if req.Port != 0 {
		if usable(req.Port) {
			return req.Port
		}
		return 0
	}
	if p, ok := reg.LastPortOf(req.ServiceName); ok && usable(p) {
		return p
	}
	for p := span.Lo; p <= span.Hi; p++ {
		if usable(p) {
			return p
		}
	}
	return 0
}

// portFree asks the OS whether port is free on the protocols proto names.
func (l *Ledger) portFree(port int, proto ledger.Proto) error {
	if proto.TCP() {
		if err := l.cfg.PortFree(port); err != nil {
			return err
		}
	}
	if proto.UDP() {
		return l.cfg.UDPPortFree(port)
	}
	return nil
}

// choosePort runs on the writer goroutine. probed is a port the caller
// found free on the OS just before submitting (0 for none); every other port
// is probed here. sub, when not zero, is the part of the managed range the
// request chooses from.
func (l *Ledger) choosePort(reg *projection.Registry, req ledger.AllocateRequest, sub ledger.Range, probed int) (int, error) {
	portFree := func(p int) error {
		if p == probed {
			return nil
		}
		return l.portFree(p, req.Proto)
	}
	span := reg.Range
	if sub != (ledger.Range{}) {
		if !reg.Range.Contains(sub.Lo) || !reg.Range.Contains(sub.Hi) {
			return 0, ledger.Errorf(ledger.EINVALID, "within %s is not inside the managed range %s", sub, reg.Range)
		}
		span = sub
	}
	if p := req.Port; p != 0 {
		if !reg.Range.Contains(p) {
			return 0, ledger.Errorf(ledger.EINVALID, "port %d is outside the managed range %s", p, reg.Range)
		}
		if !span.Contains(p) {
			return 0, ledger.Errorf(ledger.EINVALID, "port %d is outside %s, the part of the range asked for", p, span)
		}
		if a := reg.Allocs[p]; a != nil {
			return 0, ledger.Errorf(ledger.ECONFLICT, "port %d is held by %s%s since %s", p, a.ServiceName, pidNote(a.PID), ledger.FormatTime(a.AllocatedAt))
		}
		if err := portFree(p); err != nil {
			return 0, ledger.Errorf(ledger.ECONFLICT, "port %d is in use by a process the ledger did not start%s", p, conflictNote(reg, p))
		}
		return p, nil
	}
	if p, ok := reg.LastPortOf(req.ServiceName); ok && span.Contains(p) && reg.Allocs[p] == nil && !ledger.BrowserBadPort(p) {
		if _, squat := reg.Conflicts[p]; !squat && portFree(p) == nil {
			return p, nil
		}
	}
	var busy []int
	for p := span.Lo; p <= span.Hi; p++ {
		// Ports browsers refuse are skipped unless asked for by number.
		if reg.Allocs[p] != nil || ledger.BrowserBadPort(p) {
			continue
		}
		if _, squat := reg.Conflicts[p]; squat {
			busy = append(busy, p)
			continue
		}
		if portFree(p) != nil {
			busy = append(busy, p)
			continue
		}
		return p, nil
	}
	return 0, exhausted(reg, span, busy)
}

// exhausted explains a full range (span: the managed range or the part of
// it a request chose from): who holds what, and which ports other processes
// occupy.
func exhausted(reg *projection.Registry, span ledger.Range, busy []int) error {
	byService := map[string][]int{}
	held := 0
	for p, a := range reg.Allocs {
		if span.Contains(p) {
			byService[a.ServiceName] = append(byService[a.ServiceName], p)
			held++
		}
	}
	names := make([]string, 0, len(byService))
	for s := range byService {
		names = append(names, s)
	}
	slices.Sort(names)
	var parts []string
	for _, s := range names {
		ports := byService[s]
		slices.Sort(ports)
		parts = append(parts, fmt.Sprintf("%s: %s", s, portList(ports)))
	}
	msg := fmt.Sprintf("no free port in %s: all %d are taken; %d held by the ledger (%s)",
		span, span.Size(), held, strings.Join(parts, "; "))
	if len(busy) > 0 {
		msg += fmt.Sprintf("; %d in use by other processes (%s)", len(busy), portList(busy))
	}
	if bad := ledger.BrowserBadPorts(reg.Range); len(bad) > 0 {
		msg += fmt.Sprintf("; %d skipped because browsers refuse them (%s; ask for one with --port)", len(bad), ledger.FormatPorts(bad))
	}
	msg += ". Release a port (`ledger release PORT`) or widen the range (`--range`)."
	return ledger.Errorf(ledger.EEXHAUSTED, "%s", msg)
}

// portList renders up to 20 ports.
func portList(ports []int) string {
	var b strings.Builder
	for i, p := range ports {
		if i == 20 {
			fmt.Fprintf(&b, ", … %d more", len(ports)-20)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, p)
	}
	return b.String()
}

func pidNote(pid int) string {
	if pid == 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", pid)
}

func conflictNote(reg *projection.Registry, port int) string {
	if c, ok := reg.Conflicts[port]; ok {
		return fmt.Sprintf(" (pid %d: %s)", c.PID, c.Command)
	}
	return ""
}
