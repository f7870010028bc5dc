package httpapi

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/matryer/is"
	"github.com/portledger/portledger/ledger"
)

func TestToken(t *testing.T) {
	const token = "correct-horse-battery-staple"
	e := newEnv(t, func(c *Config) { c.Token = token })
	held := e.allocate(t, "api")
	routes := []struct{ method, path, body string }{
		{"GET", "/api/ports/status", ""},
		{"GET", "/api/ports/allocations", ""},
		{"GET", "/api/ports/allocations/" + strconv.Itoa(held.Port), ""},
		{"POST", "/api/ports/allocations", `{"service_name":"intruder"}`},
		{"DELETE", "/api/ports/allocations/" + strconv.Itoa(held.Port), ""},
		{"POST", "/api/ports/health-check", ""},
		{"GET", "/api/ports/watchdog/status", ""},
		{"GET", "/api/ports/history", ""},
		{"GET", "/api/ports/events", ""},
		{"PUT", "/api/ports/range", `{"port_range":"42000-42010"}`},
		{"GET", "/api/ports/no-such-route", ""},
	}
	for _, rt := range routes {
		for _, tok := range []struct{ name, value string }{{"no token", ""}, {"wrong token", "correct-horse-battery-stapl"}, {"longer token", token + "x"}} {
			t.Run(rt.method+" "+rt.path+" "+tok.name, func(t *testing.T) {
				is := is.New(t)
				before := e.state(t)
				status, m := e.call(t, rt.method, rt.path, rt.body, tok.value)
				checkError(t, status, m, http.StatusUnauthorized, EUNAUTHORIZED)
				is.Equal(e.state(t), before) // nothing written
			})
		}
	}

	t.Run("right token", func(t *testing.T) {
		is := is.New(t)
		status, _ := e.call(t, "GET", "/api/ports/status", "", token)
		is.Equal(status, http.StatusOK) // status
		status, m := e.call(t, "POST", "/api/ports/allocations", `{"service_name":"friend"}`, token)
		is.Equal(status, http.StatusCreated) // allocate
		status, _ = e.call(t, "DELETE", "/api/ports/allocations/"+strconv.Itoa(int(m["port"].(float64))), "", token)
		is.Equal(status, http.StatusOK) // release
		status, _ = e.call(t, "GET", "/healthz", "", "")
		is.Equal(status, http.StatusOK) // healthz stays open

		req, err := http.NewRequest("GET", e.srv.URL+"/api/ports/events", nil)
		is.NoErr(err)
		req.Header.Set("Authorization", "Bearer "+token)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp, err := e.srv.Client().Do(req.WithContext(ctx))
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
		_, err = NewClient(e.srv.URL, token).Status(context.Background(), [16]byte{})
		is.NoErr(err)                                                 // and passes with the token
		is.NoErr(NewClient(e.srv.URL, "").Ping(context.Background())) // ping needs none
	})
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
