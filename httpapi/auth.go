package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"github.com/portledger/portledger/ledger"
)

// Who may do what. This file is the one place that decides; the middleware
// in middleware.go calls authorize for every request before the router sees
// it.
//
//   - Over the unix socket, the kernel names the caller (SO_PEERCRED). Anyone
//     who can connect may read. The daemon's owner (the same uid) and root
//     may write; so may the members of a group the operator allowed
//     (Config.WriteGroups). Import, which writes the past, is the owner's.
//   - Over TCP, a request with the token ("Authorization: Bearer <token>",
//     or the dashboard's session cookie) may do everything. Without one,
//     only the original port manager's five routes (openRoute) answer, and
//     only to a caller on this machine (a loopback peer address); /healthz
//     and the dashboard's files and login (publicRoute) answer anyone.
//
// The actor that authorize returns is put in the request's context, and the
// writer records it on every event of the request.

// access is what a request needs.
type access int

const (
	accessPublic access = iota // /healthz and the dashboard's files and login: no token anywhere
	accessOpen                 // the seed's open routes: no token on loopback
	accessRead                 // any other read
	accessWrite                // a write
	accessImport               // an import: writes the past
)

// accessOf classifies a request by method and path. A route added later
// gets the safe default: a GET reads, anything else writes.
func accessOf(r *http.Request) access {
	path := r.URL.Path
	switch {
	case publicRoute(r.Method, path):
		return accessPublic
	case openRoute(r.Method, path):
		return accessOpen
	case path == "/api/ports/import":
		return accessImport
	case path == "/api/backup":
		// A copy of the whole record: the token over TCP, the owner (or
		// a write group) over the socket, as for a write.
		return accessWrite
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return accessRead
	}
	return accessWrite
}

// publicRoute reports whether method and path need no token from anyone:
// the liveness probe, the API's description, and the dashboard's static
// files and its login,
// which checks the token itself and trades it for the session cookie.
func publicRoute(method, path string) bool {
	if method != http.MethodGet && method != http.MethodHead {
		return false
	}
	return path == "/healthz" || path == "/api/openapi.json" || path == "/" || path == "/login" || strings.HasPrefix(path, "/ui/")
}

// openRoute reports whether method and path are one of the original port
// manager's five routes, which answered anyone on the machine: the status,
// the allocations, one allocation, the watchdog's status, and the manual
// health check.
func openRoute(method, path string) bool {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	switch path {
	case "/api/ports/status", "/api/ports/allocations", "/api/ports/watchdog/status":
		return method == http.MethodGet
	case "/api/ports/health-check":
		return method == http.MethodPost
	}
	if port, ok := strings.CutPrefix(path, "/api/ports/allocations/"); ok && method == http.MethodGet {
		_, err := strconv.Atoi(port)
		return err == nil
	}
	return false
}

// authorizer holds what authorize needs.
type authorizer struct {
	tokenSum    [32]byte // sha256 of the token; the zero token matches nothing
	hasToken    bool
	tokenName   string
	owner       int   // the daemon's uid
	writeGroups []int // gids whose members may write over the socket
}

func newAuthorizer(cfg Config) *authorizer {
	a := &authorizer{tokenName: cfg.TokenName, owner: os.Getuid(), writeGroups: cfg.WriteGroups}
	if a.tokenName == "" {
		a.tokenName = DefaultTokenName
	}
	if cfg.Token != "" {
		a.tokenSum, a.hasToken = sha256.Sum256([]byte(cfg.Token)), true
	}
	return a
}

// authorize decides whether r may go on and names its actor. It is the one
// place to extend when another proof of identity is added: the dashboard's
// session cookie is one (requestToken reads it beside the header).
func (a *authorizer) authorize(r *http.Request) (ledger.Actor, error) {
	need := accessOf(r)
	ci := connOf(r.Context())
	if ci.unix {
		return a.authorizeSocket(ci, need)
	}
	actor := ledger.Actor{Via: ledger.ViaTCP, UID: -1}
	if need == accessPublic {
		return actor, nil
	}
	// The token comes as "Authorization: Bearer" or as the dashboard's
	// session cookie (HttpOnly, SameSite=Strict: another site's page cannot
	// send it, and CrossOriginProtection has refused its writes already).
	if got, present := requestToken(r); present || r.Header.Get("Authorization") != "" {
		if !present || !a.tokenMatches(got) {
			return actor, ledger.Errorf(EUNAUTHORIZED, "wrong bearer token")
		}
		actor.Token = a.tokenName
		return actor, nil
	}
	if need == accessOpen && loopbackPeer(r.RemoteAddr) {
		return actor, nil
	}
	return actor, ledger.Errorf(EUNAUTHORIZED,
		"this route needs \"Authorization: Bearer <token>\" over TCP: the token is the file 'token' in the daemon's data directory (or use the unix socket ledger.sock)")
}

// authorizeSocket applies the unix socket's rules.
func (a *authorizer) authorizeSocket(ci connInfo, need access) (ledger.Actor, error) {
	if ci.peerErr != nil {
		if need == accessPublic || need == accessOpen || need == accessRead {
			return ledger.Actor{Via: ledger.ViaSocket, UID: -1}, nil
		}
		return ledger.Actor{}, ledger.Errorf(ledger.EFORBIDDEN, "writes over the socket need the caller's credentials, which this system does not give")
	}
	p := ci.peer
	actor := ledger.Actor{Via: ledger.ViaSocket, UID: p.UID, PID: p.PID}
	owner := p.UID == a.owner || p.UID == 0
	switch {
	case need == accessPublic || need == accessOpen || need == accessRead || owner:
		return actor, nil
	case need == accessWrite && a.inWriteGroup(p):
		return actor, nil
	case need == accessImport:
		return actor, ledger.Errorf(ledger.EFORBIDDEN, "uid %d may not import: only the daemon's owner (uid %d) may write the past", p.UID, a.owner)
	}
	return actor, ledger.Errorf(ledger.EFORBIDDEN,
		"uid %d may read but not write: the daemon's owner is uid %d (`ledger serve --allow-group GROUP` lets a group write)", p.UID, a.owner)
}

// inWriteGroup reports whether the peer is a member of an allowed group: by
// the gid of its process, or by the user's groups in the group database.
func (a *authorizer) inWriteGroup(p Peer) bool {
	if len(a.writeGroups) == 0 {
		return false
	}
	if slices.Contains(a.writeGroups, p.GID) {
		return true
	}
	u, err := user.LookupId(strconv.Itoa(p.UID))
	if err != nil {
		return false
	}
	gids, err := u.GroupIds()
	if err != nil {
		return false
	}
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil && slices.Contains(a.writeGroups, n) {
			return true
		}
	}
	return false
}

// tokenMatches compares a request's token with the daemon's. Both sides
// are hashed before the constant-time compare so that not even the token's
// length shows in the timing.
func (a *authorizer) tokenMatches(got string) bool {
	sum := sha256.Sum256([]byte(got))
	return a.hasToken && subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
}

// loopbackPeer reports whether a request's remote address is on this
// machine.
func loopbackPeer(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LookupGroup returns the gid of a group given by name or number, for
// Config.WriteGroups.
func LookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if gg, err2 := user.LookupGroupId(name); err2 == nil {
			g, err = gg, nil
		}
	}
	if err != nil {
		return 0, ledger.Errorf(ledger.EINVALID, "group %q: %v", name, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q: gid %q: %w", name, g.Gid, err)
	}
	return gid, nil
}
