package httpapi

import (
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/portledger/portledger/ledger"
)

// handlerFunc is a handler that returns its error instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle turns a handlerFunc into an http.HandlerFunc whose errors all go
// through writeError.
func handle(log *slog.Logger, fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			writeError(w, r, log, err)
		}
	}
}

// guard is the security wrapper of the whole API, outermost first:
//
//  1. the Host check (TCP only): a request must name this machine, so a
//     page whose own name was made to resolve to 127.0.0.1 (DNS rebinding)
//     is refused with 421;
//  2. net/http.CrossOriginProtection: a browser's cross-origin write (by
//     Sec-Fetch-Site, else Origin against Host) is refused with 403; curl,
//     the CLI and other programs send neither header and pass, and so does
//     a page of the daemon's own origin;
//  3. a request body must be application/json (415), so that an HTML form
//     or a no-preflight text/plain fetch cannot carry one;
//  4. authorize (auth.go): the token, the socket peer's uid, and the route's
//     needs (401, 403); its actor goes into the request's context.
//
// Every refusal is the JSON error, and nothing reaches the ledger.
func guard(cfg Config, auth *authorizer, next http.Handler) http.Handler {
	log := cfg.Logger
	hosts := allowedHosts(cfg.AllowedHosts)
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && !isJSON(r.Header.Get("Content-Type")) {
			writeError(w, r, log, ledger.Errorf(EMEDIATYPE,
				"a request body must be sent as \"Content-Type: application/json\", not %q", r.Header.Get("Content-Type")))
			return
		}
		actor, err := auth.authorize(r)
		if err != nil {
			if ledger.ErrorCode(err) == EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="portledger"`)
			}
			writeError(w, r, log, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(ledger.WithActor(r.Context(), actor)))
	})
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, log, ledger.Errorf(ledger.EFORBIDDEN,
			"cross-origin request refused: a web page of another origin may not write to the ledger"))
	}))
	checked := cop.Handler(inner)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !connOf(r.Context()).unix && !hosts.allows(r.Host) {
			writeError(w, r, log, ledger.Errorf(EMISDIRECTED,
				"host %q is not served here: use 127.0.0.1, localhost or a name given to `ledger serve --allowed-host`", r.Host))
			return
		}
		checked.ServeHTTP(w, r)
	})
}

// isJSON reports whether a Content-Type header is application/json (with
// any parameters, such as charset).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// hostSet is the set of host names a request may carry besides loopback
// ones, lower case, without port.
type hostSet map[string]bool

func allowedHosts(names []string) hostSet {
	s := hostSet{}
	for _, n := range names {
		s[normHost(n)] = true
	}
	return s
}

// allows reports whether the Host header hostport names this machine: a
// loopback address, localhost, or an allowed name. The port does not
// matter: the listener already chose it.
func (s hostSet) allows(hostport string) bool {
	h := normHost(hostport)
	if h == "" {
		return false
	}
	return ledger.IsLoopbackHost(h) || s[h]
}

// normHost strips the port and IPv6 brackets from a Host header or a name,
// lower-cases it and drops a trailing dot.
func normHost(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// recoverer turns a panic in a handler into a logged internal error, so one
// bad request cannot take the daemon down.
func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				writeError(w, r, log, fmt.Errorf("handler panic: %v", v))
			}()
			next.ServeHTTP(w, r)
		})
	}
}
