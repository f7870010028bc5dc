package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// TestBrowserShapedRequests sends, through the real server, requests with
// the headers Chromium sends: a page of another site posting a "simple"
// form or fetch (no preflight), an old browser that sends only Origin, a
// page of the daemon's own origin, and a page whose name was rebound to
// 127.0.0.1 (DNS rebinding). curl-like requests, which send none of these
// headers, pass. Each refusal leaves the log as it was.
func TestBrowserShapedRequests(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowedHosts = []string{"ledger.lan"} })
	held := e.allocate(t, "api")
	u, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	self := u.Host // 127.0.0.1:PORT
	_, port, _ := strings.Cut(self, ":")
	release := "/api/ports/allocations/" + strconv.Itoa(held.Port)
	allocate := `{"service_name":"from-a-page"}`

	// headers as Chromium sends them.
	crossSite := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "empty"}
	crossSiteForm := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
	oldBrowser := map[string]string{"Origin": "https://evil.example"}
	sameOrigin := map[string]string{"Origin": "http://" + self, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
	rebound := map[string]string{"Origin": "http://evil.example:" + port, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
	// A page of another server on this machine (another port of 127.0.0.1)
	// is same-site: the browser sends it the dashboard's SameSite=Strict
	// cookie, so only the origin check stops its writes.
	sameSite := map[string]string{"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
	none := map[string]string{}

	tests := []struct {
		name         string
		method, path string
		host         string // "" keeps 127.0.0.1:PORT
		headers      map[string]string
		contentType  string
		body         string
		token        string
		want         int
		code         string // "" for success
	}{
		// attacks
		{"cross-site form post, text/plain", "POST", "/api/ports/allocations", "", crossSiteForm, "text/plain", allocate, noToken, 403, ledger.EFORBIDDEN},
		{"cross-site fetch, text/plain, with a stolen token", "POST", "/api/ports/allocations", "", crossSite, "text/plain", allocate, testToken, 403, ledger.EFORBIDDEN},
		{"cross-site release", "DELETE", release, "", crossSite, "", "", testToken, 403, ledger.EFORBIDDEN},
		{"cross-site health check", "POST", "/api/ports/health-check", "", crossSite, "", "", noToken, 403, ledger.EFORBIDDEN},
		{"cross-site import", "POST", "/api/ports/import", "", crossSite, "text/plain", `{"events":[]}`, noToken, 403, ledger.EFORBIDDEN},
		{"page of another local port writes with the session", "POST", "/api/ports/allocations", "", sameSite, "application/json", allocate, testToken, 403, ledger.EFORBIDDEN},
		{"page of another local port releases with the session", "DELETE", release, "", sameSite, "", "", testToken, 403, ledger.EFORBIDDEN},
		{"old browser, Origin only", "POST", "/api/ports/allocations", "", oldBrowser, "text/plain", allocate, noToken, 403, ledger.EFORBIDDEN},
		{"rebinding page reads the status", "GET", "/api/ports/status", "evil.example:" + port, rebound, "", "", noToken, 421, EMISDIRECTED},
		{"rebinding page reads allocations", "GET", "/api/ports/allocations", "evil.example:" + port, rebound, "", "", noToken, 421, EMISDIRECTED},
		{"rebinding page releases", "DELETE", release, "evil.example:" + port, rebound, "", "", noToken, 421, EMISDIRECTED},
		{"rebinding page with a guessed token", "POST", "/api/ports/allocations", "evil.example:" + port, rebound, "application/json", allocate, testToken, 421, EMISDIRECTED},
		{"curl, text/plain body", "POST", "/api/ports/allocations", "", none, "text/plain", allocate, testToken, 415, EMEDIATYPE},
		{"curl, form body", "POST", "/api/ports/allocations", "", none, "application/x-www-form-urlencoded", allocate, testToken, 415, EMEDIATYPE},
		{"curl, body without a type", "POST", "/api/ports/allocations", "", none, "", allocate, testToken, 415, EMEDIATYPE},
		{"same-origin page without a token writes", "POST", "/api/ports/allocations", "", sameOrigin, "application/json", allocate, noToken, 401, EUNAUTHORIZED},
		{"empty Host", "GET", "/api/ports/status", "", none, "", "", noToken, 421, EMISDIRECTED},
		// what keeps working
		{"same-origin page reads the status", "GET", "/api/ports/status", "", sameOrigin, "", "", noToken, 200, ""},
		{"same-origin page writes with the token", "POST", "/api/ports/allocations", "", sameOrigin, "application/json", allocate, testToken, 201, ""},
		{"cross-site page reads (the browser hides the answer)", "GET", "/api/ports/status", "", crossSite, "", "", noToken, 200, ""},
		{"curl posts JSON with the token", "POST", "/api/ports/allocations", "", none, "application/json; charset=utf-8", `{"service_name":"curl"}`, testToken, 201, ""},
		{"curl runs the health check", "POST", "/api/ports/health-check", "", none, "", "", noToken, 200, ""},
		{"Host localhost", "GET", "/api/ports/status", "localhost:" + port, none, "", "", noToken, 200, ""},
		{"Host LOCALHOST.", "GET", "/api/ports/status", "LOCALHOST.:" + port, none, "", "", noToken, 200, ""},
		{"Host [::1]", "GET", "/api/ports/status", "[::1]:" + port, none, "", "", noToken, 200, ""},
		{"Host allowed by the operator", "GET", "/api/ports/status", "ledger.lan:" + port, none, "", "", noToken, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			before := e.state(t)
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, e.srv.URL+tt.path, body)
			is.NoErr(err)
			switch {
			case tt.name == "empty Host":
				req.Host = " "
			case tt.host != "":
				req.Host = tt.host
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.token != noToken {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := e.srv.Client().Do(req)
			is.NoErr(err)
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			is.NoErr(err)
			if tt.code == "" {
				is.Equal(resp.StatusCode, tt.want) // allowed: %s
				return
			}
			m := decodeObject(t, raw)
			checkError(t, resp.StatusCode, m, tt.want, tt.code)
			is.Equal(resp.Header.Get("Access-Control-Allow-Origin"), "") // no CORS grant
			is.Equal(e.state(t), before)                                 // the log is unchanged
		})
	}

	t.Run("preflight of a cross-site JSON fetch grants nothing", func(t *testing.T) {
		is := is.New(t)
		req, err := http.NewRequest("OPTIONS", e.srv.URL+"/api/ports/allocations", nil)
		is.NoErr(err)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Sec-Fetch-Mode", "cors")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,authorization")
		resp, err := e.srv.Client().Do(req)
		is.NoErr(err)
		resp.Body.Close()
		is.True(resp.StatusCode >= 400)                              // not a successful preflight
		is.Equal(resp.Header.Get("Access-Control-Allow-Origin"), "") // the browser will not send the POST
	})
}

// decodeObject decodes a JSON object answer, failing the test otherwise.
func decodeObject(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %q", err, raw)
	}
	return m
}
