package commands

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/portledger/portledger/ledger"
)

// Field limits.
const (
	MaxServiceName = 128
	MaxStartedBy   = 128
	MaxPurpose     = ledger.MaxText
	MaxReason      = ledger.MaxText
	MaxHealthURL   = ledger.MaxText
	MaxHealthPath  = 256
	MaxLease       = 7 * 24 * time.Hour
)

// ValidateServiceName checks a service name: 1-128 characters of
// [A-Za-z0-9._-].
func ValidateServiceName(name string) error {
	if name == "" {
		return ledger.Errorf(ledger.EINVALID, "service name is required")
	}
	if len(name) > MaxServiceName {
		return ledger.Errorf(ledger.EINVALID, "service name is %d characters long; the limit is %d", len(name), MaxServiceName)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return ledger.Errorf(ledger.EINVALID, "service name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

// validateText checks a free-text field: valid UTF-8, bounded, no control
// characters or Unicode line and paragraph separators (which would break
// log lines and terminals) and no Unicode
// format characters (which reorder or hide text). It is the one check of
// every string that enters the log, through the API or an import.
func validateText(field, s string, limit int) error {
	if len(s) > limit {
		return ledger.Errorf(ledger.EINVALID, "%s is %d bytes long; the limit is %d", field, len(s), limit)
	}
	if !utf8.ValidString(s) {
		return ledger.Errorf(ledger.EINVALID, "%s is not valid UTF-8", field)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return ledger.Errorf(ledger.EINVALID, "%s contains control characters", field)
	}
	if strings.IndexFunc(s, isLineSeparator) >= 0 {
		// U+2028 and U+2029 end a line for Unicode, some editors and
		// viewers: a fake line as much as \n is.
		return ledger.Errorf(ledger.EINVALID, "%s contains a Unicode line or paragraph separator", field)
	}
	if i := strings.IndexFunc(s, isFormat); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return ledger.Errorf(ledger.EINVALID, "%s contains the Unicode format character %U, which changes how text is shown", field, r)
	}
	return nil
}

// escapeObserved makes a string that the OS told us (a process's command
// line), not one a caller chose, fit for the log: control, format and line
// separator characters and invalid UTF-8 become \xNN or \u{NNNN}, a
// backslash is doubled, and the result is cut to limit bytes on a character
// boundary.
// A caller's string with such characters is refused (validateText); an
// observed one is a fact to record, so it is escaped and kept.
func escapeObserved(s string, limit int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < limit; {
		r, size := utf8.DecodeRuneInString(s[i:])
		var piece string
		switch {
		case r == utf8.RuneError && size <= 1:
			piece = fmt.Sprintf("\\x%02x", s[i])
		case r == '\\':
			piece = `\\`
		case r < 0x100 && unicode.IsControl(r):
			piece = fmt.Sprintf("\\x%02x", r)
		case unicode.IsControl(r) || isFormat(r) || isLineSeparator(r):
			piece = fmt.Sprintf("\\u{%04X}", r)
		default:
			piece = s[i : i+size]
		}
		if b.Len()+len(piece) > limit {
			break
		}
		b.WriteString(piece)
		i += size
	}
	return b.String()
}

// isFormat reports whether r is a Unicode format character (category Cf),
// such as U+202E RIGHT-TO-LEFT OVERRIDE or U+200B ZERO WIDTH SPACE, which
// reorder or hide what a terminal shows.
func isFormat(r rune) bool { return unicode.In(r, unicode.Cf) }

// isLineSeparator reports whether r is U+2028 LINE SEPARATOR or U+2029
// PARAGRAPH SEPARATOR (categories Zl and Zp).
func isLineSeparator(r rune) bool { return unicode.In(r, unicode.Zl, unicode.Zp) }

// validatePID checks the shape of a PID; whether it is alive is asked of the OS.
func validatePID(pid int) error {
	if pid <= 1 {
		return ledger.Errorf(ledger.EINVALID, "pid %d: want the PID of the service's process (> 1)", pid)
	}
	return nil
}

// ValidateHealthURL checks that u is an http(s) URL on a loopback host, so
// the watchdog can never be pointed at another machine.
func ValidateHealthURL(u string) error {
	if u == "" {
		return nil
	}
	if err := validateText("health_url", u, MaxHealthURL); err != nil {
		return err
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ledger.Errorf(ledger.EINVALID, "health_url %q: want an http:// URL on this machine, e.g. http://127.0.0.1:8000/health", u)
	}
	if !ledger.IsLoopbackHost(p.Hostname()) {
		return ledger.Errorf(ledger.EINVALID, "health_url %q: only loopback hosts (127.0.0.1, ::1, localhost) are probed", u)
	}
	return nil
}

// validateAllocate checks every field of an allocation request that can be
// checked without the registry.
func validateAllocate(req ledger.AllocateRequest) error {
	if err := ValidateServiceName(req.ServiceName); err != nil {
		return err
	}
	if err := validateText("started_by", req.StartedBy, MaxStartedBy); err != nil {
		return err
	}
	if err := validateText("purpose", req.Purpose, MaxPurpose); err != nil {
		return err
	}
	if req.Port != 0 {
		if err := ledger.CheckPort(req.Port); err != nil {
			return err
		}
	}
	if req.PID != 0 {
		if err := validatePID(req.PID); err != nil {
			return err
		}
	}
	if req.Lease < 0 || time.Duration(req.Lease*float64(time.Second)) > MaxLease {
		return ledger.Errorf(ledger.EINVALID, "lease %gs: want 0 to %s", req.Lease, MaxLease)
	}
	if err := ValidateHealthURL(req.HealthURL); err != nil {
		return err
	}
	if !req.Proto.Valid() {
		return ledger.Errorf(ledger.EINVALID, "proto %q: want tcp, udp or both", req.Proto)
	}
	if _, err := within(req); err != nil {
		return err
	}
	return validateHealthPath(req)
}

// within returns the part of the range a request chooses from: the zero
// Range for the whole managed range.
func within(req ledger.AllocateRequest) (ledger.Range, error) {
	if req.Within == "" {
		return ledger.Range{}, nil
	}
	r, err := ledger.ParseRange(req.Within)
	if err != nil {
		return ledger.Range{}, ledger.Errorf(ledger.EINVALID, "within: %s", ledger.ErrorMessage(err))
	}
	return r, nil
}

// validateHealthPath checks a health path: it starts with "/" and makes a
// valid loopback URL with any port.
func validateHealthPath(req ledger.AllocateRequest) error {
	path := req.HealthPath
	if path == "" {
		return nil
	}
	if req.HealthURL != "" {
		return ledger.Errorf(ledger.EINVALID, "give health_url or health_path, not both")
	}
	if err := validateText("health_path", path, MaxHealthPath); err != nil {
		return err
	}
	if !strings.HasPrefix(path, "/") {
		return ledger.Errorf(ledger.EINVALID, "health_path %q: want a path starting with /, e.g. /health", path)
	}
	if _, err := url.Parse(healthURLFor(ledger.MaxPort, path)); err != nil {
		return ledger.Errorf(ledger.EINVALID, "health_path %q: not a valid URL path", path)
	}
	return nil
}

// healthURLFor is the health URL of a service on port with a health path.
func healthURLFor(port int, path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(port) + path
}
