package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/portledger/portledger/ledger"
)

// webFiles are the dashboard's page, script and style, served at / and
// /ui/. They are plain files: no build step, no CDN.
//
//go:embed web
var webFiles embed.FS

// SessionCookie begins the name of the cookie that carries the token for
// the dashboard's reads and write buttons. It is HttpOnly (the page's script
// never sees the token) and SameSite=Strict (no other site's page sends it).
// A browser keeps cookies by host, not by port, so the name ends with the
// port of the address the browser used ("portledger_session_7999"): two
// daemons on one machine each keep their own session.
const SessionCookie = "portledger_session"

// sessionCookieName is the session cookie's name for requests to host (a
// Host header, host:port).
func sessionCookieName(host string) string {
	if _, port, err := net.SplitHostPort(host); err == nil && port != "" {
		return SessionCookie + "_" + port
	}
	return SessionCookie
}

// DashboardURL returns the URL that opens the dashboard on base (such as
// http://127.0.0.1:7999): with a token, the /login URL that hands the token
// over once and leaves it in the session cookie.
func DashboardURL(base, token string) string {
	if token == "" {
		return base + "/"
	}
	return base + "/login?token=" + url.QueryEscape(token)
}

// handleDashboardFiles serves the embedded files: / is the page, /ui/ the
// rest. The page is the same for every path under it; the script reads the
// location's fragment (#/port/8001) for the view.
func handleDashboardFiles() http.Handler {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		files.ServeHTTP(w, r)
	})
}

// handleLogin exchanges the token in ?token= for the session cookie and
// sends the browser on to the page, so the token leaves the address bar and
// the history at once. A daemon without a token has nothing to exchange.
func handleLogin(token string, log *slog.Logger) http.HandlerFunc {
	want := sha256.Sum256([]byte(token))
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-store")
		if token == "" {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return nil
		}
		got := sha256.Sum256([]byte(r.URL.Query().Get("token")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return ledger.Errorf(EUNAUTHORIZED, "wrong token: open the URL that `ledger serve` printed")
		}
		http.SetCookie(w, &http.Cookie{
			Name: sessionCookieName(r.Host), Value: token, Path: "/",
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
		})
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	})
}

// requestToken returns the token a request carries: "Authorization: Bearer
// <token>", else the dashboard's session cookie. ok is false when it
// carries neither.
func requestToken(r *http.Request) (token string, ok bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		return strings.CutPrefix(h, "Bearer ")
	}
	if c, err := r.Cookie(sessionCookieName(r.Host)); err == nil {
		return c.Value, true
	}
	return "", false
}
