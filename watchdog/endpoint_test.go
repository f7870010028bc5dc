package watchdog

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestEndpointOnlyFetchesLoopback(t *testing.T) {
	is := is.New(t)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	p := newEndpointProber(time.Second)
	ctx := context.Background()

	res, ok := p.check(ctx, srv.URL)
	is.True(ok)
	is.Equal(res, "ok")
	is.Equal(hits.Load(), int64(1)) // a loopback URL is fetched

	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	res, ok = p.check(ctx, "http://localhost:"+port+"/health")
	is.True(ok) // localhost resolves to loopback: fetched
	is.Equal(res, "ok")
	is.Equal(hits.Load(), int64(2))

	for _, u := range []string{"http://192.0.2.1/health", "http://example.com/", "ftp://127.0.0.1/"} {
		res, ok = p.check(ctx, u)
		is.True(ok)                                    // not counted against the service
		is.True(strings.HasPrefix(res, "not checked")) // but never fetched: %s
	}
	is.Equal(hits.Load(), int64(2))
}

func TestEndpointRefused(t *testing.T) {
	is := is.New(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	res, ok := newEndpointProber(time.Second).check(context.Background(), url)
	is.True(!ok)
	is.Equal(res, "connection refused")
}
