package httpapi

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/matryer/is"
)

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestLoginExchangesTheTokenForACookie: /login with the right token sets an
// HttpOnly, SameSite=Strict session cookie and sends the browser to /; the
// cookie then opens the API as the bearer token does; a wrong token or a
// wrong cookie opens nothing.
func TestLoginExchangesTheTokenForACookie(t *testing.T) {
	is := is.New(t)
	const token = "login-test-token"
	e := newEnv(t, func(c *Config) { c.Token = token })

	resp, err := noRedirect.Get(e.srv.URL + "/login?token=wrong")
	is.NoErr(err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	is.Equal(resp.StatusCode, http.StatusUnauthorized)        // a wrong token is refused
	is.True(strings.Contains(string(body), `"unauthorized"`)) // with the JSON error
	is.Equal(len(resp.Cookies()), 0)                          // and no cookie

	resp, err = noRedirect.Get(e.srv.URL + "/login?token=" + token)
	is.NoErr(err)
	resp.Body.Close()
	is.Equal(resp.StatusCode, http.StatusSeeOther) // sent on
	is.Equal(resp.Header.Get("Location"), "/")     // to the page, without the token
	cookies := resp.Cookies()
	is.Equal(len(cookies), 1) // one cookie
	c := cookies[0]
	is.Equal(c.Name, sessionCookieName(strings.TrimPrefix(e.srv.URL, "http://"))) // named for this daemon's port
	is.True(c.HttpOnly)                                                           // the page's script cannot read it
	is.Equal(c.SameSite, http.SameSiteStrictMode)                                 // no other site sends it

	tests := []struct {
		name   string
		cookie string
		want   int
	}{
		{"the session cookie", token, http.StatusOK},
		{"a wrong cookie", "not-the-token", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/api/ports/status", nil)
			is.NoErr(err)
			req.AddCookie(&http.Cookie{Name: c.Name, Value: tt.cookie})
			resp, err := http.DefaultClient.Do(req)
			is.NoErr(err)
			resp.Body.Close()
			is.Equal(resp.StatusCode, tt.want) // status
		})
	}
}

// TestDashboardFilesAreEmbedded serves the page, its script and its style
// from the binary, with a content security policy that allows only this
// origin.
func TestDashboardFilesAreEmbedded(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, path, typ, contains string
	}{
		{"page", "/", "text/html", `<script type="module" src="/ui/app.js">`},
		{"script", "/ui/app.js", "text/javascript", "EventSource"},
		{"style", "/ui/style.css", "text/css", "prefers-color-scheme: dark"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			resp, err := http.Get(e.srv.URL + tt.path)
			is.NoErr(err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			is.Equal(resp.StatusCode, http.StatusOK)                                                    // served
			is.True(strings.HasPrefix(resp.Header.Get("Content-Type"), tt.typ))                         // content type
			is.True(strings.Contains(string(body), tt.contains))                                        // the file
			is.True(strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'")) // same origin only
		})
	}
}
