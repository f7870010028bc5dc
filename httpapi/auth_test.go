package httpapi

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

// TestTCPAccess checks who may do what over TCP: the original port
// manager's five routes and /healthz answer a loopback caller without a
// token; every other route, every write and the import need the token; a
// wrong token is refused everywhere. Refusals leave the log as it was.
func TestTCPAccess(t *testing.T) {
	e := newEnv(t)
	held := e.allocate(t, "api")
	port := strconv.Itoa(held.Port)
	routes := []struct {
		method, path, body string
		open               bool // answers without a token on loopback
		wantOK             int  // the status with the token
	}{
		{"GET", "/healthz", "", true, 200},
		{"GET", "/api/ports/status", "", true, 200},
		{"GET", "/api/ports/allocations", "", true, 200},
		{"GET", "/api/ports/allocations/" + port, "", true, 200},
		{"GET", "/api/ports/watchdog/status", "", true, 200},
		{"POST", "/api/ports/health-check", "", true, 200},
		{"GET", "/api/ports/history", "", false, 200},
		{"GET", "/api/ports/who/" + port, "", false, 200},
		{"GET", "/api/ports/usage", "", false, 200},
		{"GET", "/api/ports/no-such-route", "", false, 404},
		{"POST", "/api/ports/allocations", `{"service_name":"intruder"}`, false, 201},
		{"POST", "/api/ports/allocations/" + port + "/stats", `{"request_count":1,"error_count":0}`, false, 204},
		{"PUT", "/api/ports/range", `{"port_range":"27000-27100"}`, false, 204},
		{"POST", "/api/ports/import", `{"events":[]}`, false, 200},
		{"DELETE", "/api/ports/allocations/" + port, "", false, 200},
	}
	for _, rt := range routes {
		tokens := []struct {
			name, value string
			want        int
			code        string
		}{
			{"no token", noToken, http.StatusUnauthorized, EUNAUTHORIZED},
			{"wrong token", "test-tokem", http.StatusUnauthorized, EUNAUTHORIZED},
			{"longer token", testToken + "x", http.StatusUnauthorized, EUNAUTHORIZED},
			{"not bearer", "Basic " + testToken, http.StatusUnauthorized, EUNAUTHORIZED},
		}
		if rt.open {
			tokens[0].want, tokens[0].code = http.StatusOK, ""
		}
		if rt.path == "/healthz" { // public: no token is looked at
			for i := range tokens {
				tokens[i].want, tokens[i].code = http.StatusOK, ""
			}
		}
		for _, tok := range tokens {
			t.Run(rt.method+" "+rt.path+" "+tok.name, func(t *testing.T) {
				is := is.New(t)
				before := e.state(t)
				status, m := e.call(t, rt.method, rt.path, rt.body, tok.value)
				if tok.code == "" {
					is.Equal(status, tok.want) // open on loopback
					return
				}
				checkError(t, status, m, tok.want, tok.code)
				is.Equal(e.state(t), before) // nothing written
			})
		}
		t.Run(rt.method+" "+rt.path+" right token", func(t *testing.T) {
			is := is.New(t)
			status, _ := e.call(t, rt.method, rt.path, rt.body, testToken)
			is.Equal(status, rt.wantOK) // the token opens the route
		})
	}

	t.Run("event stream", func(t *testing.T) {
		is := is.New(t)
		req, err := http.NewRequest("GET", e.srv.URL+"/api/ports/events", nil)
		is.NoErr(err)
		resp, err := e.srv.Client().Do(req)
		is.NoErr(err)
		resp.Body.Close()
		is.Equal(resp.StatusCode, http.StatusUnauthorized) // the stream needs the token
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp, err = e.srv.Client().Do(e.authorize(req).WithContext(ctx))
		is.NoErr(err)
		defer resp.Body.Close()
		is.Equal(resp.StatusCode, http.StatusOK) // the stream opens with the token
		a := e.allocate(t, "streamed")
		msg, _ := nextEvent(t, bufio.NewReader(resp.Body))
		is.Equal(msg.id, a.EventID.String()) // and delivers
	})

	t.Run("client", func(t *testing.T) {
		is := is.New(t)
		_, err := NewClient(e.srv.URL, "wrong").Status(context.Background(), [16]byte{})
		is.Equal(ledger.ErrorCode(err), EUNAUTHORIZED) // the client reports the refusal
		_, err = NewClient(e.srv.URL, "").History(context.Background(), ledger.HistoryQuery{})
		is.Equal(ledger.ErrorCode(err), EUNAUTHORIZED) // history needs the token
		_, err = NewClient(e.srv.URL, "").Status(context.Background(), [16]byte{})
		is.NoErr(err) // the status is open on loopback
		_, err = e.client().History(context.Background(), ledger.HistoryQuery{})
		is.NoErr(err)                                                 // and passes with the token
		is.NoErr(NewClient(e.srv.URL, "").Ping(context.Background())) // ping needs none
	})
}

// TestServerWithoutTokenRefusesTCPWrites checks that a server given no
// token opens nothing but the open routes over TCP: no token matches.
func TestServerWithoutTokenRefusesTCPWrites(t *testing.T) {
	is := is.New(t)
	e := newEnv(t, func(c *Config) { c.Token = "" })
	before := e.state(t)
	status, m := e.call(t, "POST", "/api/ports/allocations", `{"service_name":"x"}`, noToken)
	checkError(t, status, m, http.StatusUnauthorized, EUNAUTHORIZED)
	status, m = e.call(t, "POST", "/api/ports/allocations", `{"service_name":"x"}`, "anything")
	checkError(t, status, m, http.StatusUnauthorized, EUNAUTHORIZED)
	is.Equal(e.state(t), before) // nothing written
	status, _ = e.call(t, "GET", "/api/ports/status", "", noToken)
	is.Equal(status, http.StatusOK) // the open routes still answer
}

// TestOpenRoutesNeedALoopbackPeer serves on an address of this machine
// that is not loopback and calls it there: without a token even the open
// routes are refused, as the caller could be another machine.
func TestOpenRoutesNeedALoopbackPeer(t *testing.T) {
	is := is.New(t)
	ip := externalIPv4(t)
	e := newEnv(t, func(c *Config) { c.AllowedHosts = []string{ip} })
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	is.NoErr(err) // listen on a non-loopback address
	srv := NewHTTPServer(e.srv.Config.Handler)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "http://" + ln.Addr().String()

	resp, err := http.Get(url + "/api/ports/status")
	is.NoErr(err)
	resp.Body.Close()
	is.Equal(resp.StatusCode, http.StatusUnauthorized) // the open route is open to loopback callers only
	req, err := http.NewRequest("GET", url+"/api/ports/status", nil)
	is.NoErr(err)
	resp, err = http.DefaultClient.Do(e.authorize(req))
	is.NoErr(err)
	resp.Body.Close()
	is.Equal(resp.StatusCode, http.StatusOK) // with the token it answers
}

// externalIPv4 returns an IPv4 address of this machine that is not
// loopback, or skips.
func externalIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address")
	return ""
}

func TestCheckListenAddr(t *testing.T) {
	tests := []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:7999", "", true},
		{"[::1]:7999", "", true},
		{"localhost:7999", "", true},
		{"127.0.0.2:7999", "", true},
		{"0.0.0.0:7999", "", false},
		{":7999", "", false},
		{"[::]:7999", "", false},
		{"192.168.1.10:7999", "", false},
		{"example.com:7999", "", false},
		{"0.0.0.0:7999", "s3cret", true},
		{":7999", "s3cret", true},
		{"no-port", "", false},
		{"no-port", "s3cret", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr+" token="+tt.token, func(t *testing.T) {
			is := is.New(t)
			err := CheckListenAddr(tt.addr, tt.token)
			is.Equal(err == nil, tt.ok) // refused unless loopback or guarded by a token
			if err != nil {
				is.Equal(ledger.ErrorCode(err), ledger.EINVALID) // a usage error
			}
		})
	}
}

// TestTCPWriteRecordsTheTokenName checks that a write over TCP names the
// token it carried as its actor.
func TestTCPWriteRecordsTheTokenName(t *testing.T) {
	is := is.New(t)
	e := newEnv(t, func(c *Config) { c.TokenName = "ci" })
	a, err := e.client().Allocate(context.Background(), ledger.AllocateRequest{ServiceName: "api"})
	is.NoErr(err) // allocate over TCP with the token
	evs, err := e.svc.History(context.Background(), ledger.HistoryQuery{Port: a.Port})
	is.NoErr(err)
	is.Equal(*evs[0].Actor, ledger.Actor{Via: ledger.ViaTCP, UID: -1, Token: "ci"}) // the token's name is the actor
}
