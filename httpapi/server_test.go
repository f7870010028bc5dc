package httpapi

import (
	"context"
	"fmt"
	"github.com/portledger/portledger/internal/ledgertest"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

func TestStatus(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	a := e.allocate(t, "api")

	status, m := e.call(t, "GET", "/api/ports/status", "", "")
	is.Equal(status, http.StatusOK) // status
	pm, ok := m["port_manager"].(map[string]any)
	is.True(ok)                                   // port_manager object
	is.Equal(pm["port_range"], "27000-27100")     // port_range
	is.Equal(pm["total_ports"], float64(101))     // total_ports
	is.Equal(pm["allocated_ports"], float64(1))   // allocated_ports
	is.Equal(pm["available_ports"], float64(100)) // available_ports
	allocs, ok := pm["allocations"].([]any)
	is.True(ok)              // allocations is a list
	is.Equal(len(allocs), 1) // one allocation
	checkAllocationJSON(t, allocs[0].(map[string]any), a)

	wd, ok := m["watchdog"].(map[string]any)
	is.True(ok)                                   // watchdog object
	is.Equal(wd["running"], true)                 // running, from the watchdog
	is.Equal(wd["check_interval"], float64(30))   // check_interval
	is.Equal(wd["checks_performed"], float64(42)) // checks_performed
	is.Equal(wd["issues_detected"], float64(3))   // issues_detected
	is.Equal(wd["monitored_ports"], float64(7))   // monitored_ports
}

func TestStatusWithoutWatchdog(t *testing.T) {
	is := is.New(t)
	e := newEnv(t, func(c *Config) { c.Watchdog = nil })
	e.allocate(t, "api")

	status, m := e.call(t, "GET", "/api/ports/status", "", "")
	is.Equal(status, http.StatusOK) // status
	wd := m["watchdog"].(map[string]any)
	is.Equal(wd["running"], false) // no watchdog runs
	for _, k := range []string{"check_interval", "checks_performed", "issues_detected", "monitored_ports"} {
		_, ok := wd[k]
		is.True(ok) // watchdog field present
	}

	status, m = e.call(t, "GET", "/api/ports/watchdog/status", "", "")
	is.Equal(status, http.StatusOK) // watchdog status answers without a watchdog
	is.Equal(m["running"], false)   // and says it is not running

	status, m = e.call(t, "POST", "/api/ports/health-check", "", "")
	checkError(t, status, m, http.StatusServiceUnavailable, EUNAVAILABLE)
}

func TestStatusAt(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	first := e.allocate(t, "api")
	second := e.allocate(t, "worker")

	// At the first allocation's event, the second did not exist yet.
	at := first.EventID.String()
	status, m := e.call(t, "GET", "/api/ports/status?at="+at, "", "")
	is.Equal(status, http.StatusOK) // status at
	pm := m["port_manager"].(map[string]any)
	is.Equal(pm["allocated_ports"], float64(1)) // one allocation then
	is.Equal(pm["port_range"], "27000-27100")   // the range of then
	allocs := pm["allocations"].([]any)
	checkAllocationJSON(t, allocs[0].(map[string]any), first)

	status, m = e.call(t, "GET", "/api/ports/allocations?at="+at, "", "")
	is.Equal(status, http.StatusOK)            // allocations at
	is.Equal(len(m["allocations"].([]any)), 1) // one allocation then
	status, m = e.call(t, "GET", fmt.Sprintf("/api/ports/allocations/%d?at=%s", second.Port, at), "", "")
	checkError(t, status, m, http.StatusNotFound, ledger.ENOTFOUND) // second port was free then

	// Two hours ago the ledger was empty, with the default range.
	status, m = e.call(t, "GET", "/api/ports/status?at=2h", "", "")
	is.Equal(status, http.StatusOK) // status 2h ago
	pm = m["port_manager"].(map[string]any)
	is.Equal(pm["port_range"], "8000-8100")     // default range
	is.Equal(pm["allocated_ports"], float64(0)) // nothing allocated
	is.Equal(len(pm["allocations"].([]any)), 0) // an empty list, not null

	// Now, both.
	status, m = e.call(t, "GET", "/api/ports/status", "", "")
	is.Equal(status, http.StatusOK)                                             // status now
	is.Equal(m["port_manager"].(map[string]any)["allocated_ports"], float64(2)) // two now

	status, m = e.call(t, "GET", "/api/ports/status?at=yesterday-ish", "", "")
	checkError(t, status, m, http.StatusBadRequest, ledger.EINVALID) // bad at
}

func TestAllocationLifecycle(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)

	status, m := e.call(t, "POST", "/api/ports/allocations",
		`{"service_name":"grace_backend","started_by":"serve.py","purpose":"Main API server"}`, "")
	is.Equal(status, http.StatusCreated) // allocate answers 201
	port := int(m["port"].(float64))
	is.True(testRange.Contains(port)) // port from the range
	a, err := e.svc.Allocation(context.Background(), port, ulid.ULID{})
	is.NoErr(err) // the ledger holds it
	checkAllocationJSON(t, m, a)
	is.Equal(a.ServiceName, "grace_backend") // stored as sent
	is.Equal(a.Purpose, "Main API server")   // stored as sent

	status, m = e.call(t, "GET", "/api/ports/allocations/"+strconv.Itoa(port), "", "")
	is.Equal(status, http.StatusOK) // get one
	checkAllocationJSON(t, m, a)

	other := e.allocate(t, "worker")
	status, m = e.call(t, "GET", "/api/ports/allocations", "", "")
	is.Equal(status, http.StatusOK)            // list
	is.Equal(len(m["allocations"].([]any)), 2) // both
	status, m = e.call(t, "GET", "/api/ports/allocations?service=worker", "", "")
	is.Equal(status, http.StatusOK) // list of one service
	list := m["allocations"].([]any)
	is.Equal(len(list), 1) // only the worker
	checkAllocationJSON(t, list[0].(map[string]any), other)

	pid := ledgertest.Sleeper(t)
	status, m = e.call(t, "POST", fmt.Sprintf("/api/ports/allocations/%d/pid", port), fmt.Sprintf(`{"pid":%d}`, pid), "")
	is.Equal(status, http.StatusOK)    // register pid
	is.Equal(m["pid"], float64(pid))   // answers the allocation with the pid
	is.Equal(m["port"], float64(port)) // of that port

	status, raw := e.raw(t, "POST", fmt.Sprintf("/api/ports/allocations/%d/stats", port), `{"request_count":120,"error_count":4}`, "")
	is.Equal(status, http.StatusNoContent) // stats
	is.Equal(len(raw), 0)                  // no body
	a, err = e.svc.Allocation(context.Background(), port, ulid.ULID{})
	is.NoErr(err)
	is.Equal(a.RequestCount, int64(120)) // request_count recorded
	is.Equal(a.ErrorCount, int64(4))     // error_count recorded
	status, m = e.call(t, "GET", "/api/ports/allocations/"+strconv.Itoa(port), "", "")
	is.Equal(status, http.StatusOK)
	is.Equal(m["request_count"], float64(120)) // visible over HTTP
	is.Equal(m["error_count"], float64(4))     // visible over HTTP

	status, m = e.call(t, "DELETE", fmt.Sprintf("/api/ports/allocations/%d?reason=shutdown&event_id=%s", port, a.EventID), "", "")
	is.Equal(status, http.StatusOK)            // release
	is.Equal(m["type"], "released")            // answers the released event
	is.Equal(m["port"], float64(port))         // of that port
	is.Equal(m["reason"], "shutdown")          // with the reason
	is.Equal(m["request_count"], float64(120)) // and the final counts
	id, _ := m["id"].(string)
	is.Equal(id, e.log.LastID().String()) // the event that was appended

	status, m = e.call(t, "GET", "/api/ports/allocations/"+strconv.Itoa(port), "", "")
	checkError(t, status, m, http.StatusNotFound, ledger.ENOTFOUND) // free now
}

func TestHistory(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	a := e.allocate(t, "api")
	b := e.allocate(t, "worker")
	_, err := e.svc.Release(context.Background(), ledger.ReleaseRequest{Port: a.Port, Reason: "done"})
	is.NoErr(err)

	status, m := e.call(t, "GET", "/api/ports/history", "", "")
	is.Equal(status, http.StatusOK) // history
	evs := m["events"].([]any)
	is.Equal(len(evs), 4) // range change, two allocations, one release
	types := []string{}
	for _, ev := range evs {
		types = append(types, ev.(map[string]any)["type"].(string))
	}
	is.Equal(strings.Join(types, ","), "range_changed,allocated,allocated,released") // oldest first
	first := evs[1].(map[string]any)
	is.Equal(first["id"], a.EventID.String()) // flat event: id
	is.Equal(first["port"], float64(a.Port))  // flat event: port
	is.Equal(first["service_name"], "api")    // flat event: payload
	_, ok := first["at"].(string)
	is.True(ok) // flat event: at

	status, m = e.call(t, "GET", fmt.Sprintf("/api/ports/history?port=%d", a.Port), "", "")
	is.Equal(status, http.StatusOK)       // history by port
	is.Equal(len(m["events"].([]any)), 2) // allocated and released

	status, m = e.call(t, "GET", "/api/ports/history?service=worker", "", "")
	is.Equal(status, http.StatusOK) // history by service
	evs = m["events"].([]any)
	is.Equal(len(evs), 1)                                       // the worker's allocation
	is.Equal(evs[0].(map[string]any)["id"], b.EventID.String()) // that one

	status, m = e.call(t, "GET", "/api/ports/history?since="+b.EventID.String(), "", "")
	is.Equal(status, http.StatusOK)       // since, inclusive
	is.Equal(len(m["events"].([]any)), 2) // b and the release
	status, m = e.call(t, "GET", "/api/ports/history?until="+a.EventID.String(), "", "")
	is.Equal(status, http.StatusOK)       // until, inclusive
	is.Equal(len(m["events"].([]any)), 2) // range change and a
	status, m = e.call(t, "GET", "/api/ports/history?limit=1", "", "")
	is.Equal(status, http.StatusOK)       // limit
	is.Equal(len(m["events"].([]any)), 1) // one
	status, m = e.call(t, "GET", "/api/ports/history?since=2h", "", "")
	is.Equal(status, http.StatusOK)       // relative since
	is.Equal(len(m["events"].([]any)), 4) // everything is younger than 2h
	status, m = e.call(t, "GET", "/api/ports/history?port=99999", "", "")
	is.Equal(len(m), 2)
	checkError(t, status, m, http.StatusBadRequest, ledger.EINVALID) // bad port
	status, m = e.call(t, "GET", "/api/ports/history?limit=-1", "", "")
	checkError(t, status, m, http.StatusBadRequest, ledger.EINVALID) // bad limit
	status, m = e.call(t, "GET", "/api/ports/history?since=soon", "", "")
	checkError(t, status, m, http.StatusBadRequest, ledger.EINVALID) // bad since
	status, m = e.call(t, "GET", "/api/ports/history?service=nobody", "", "")
	is.Equal(status, http.StatusOK) // unknown service
	is.Equal(m["events"], []any{})  // an empty list, not null
}

func TestWatchdogRoutes(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)

	status, m := e.call(t, "GET", "/api/ports/watchdog/status", "", "")
	is.Equal(status, http.StatusOK)              // watchdog status
	is.Equal(m["running"], true)                 // running
	is.Equal(m["check_interval"], float64(30))   // check_interval
	is.Equal(m["checks_performed"], float64(42)) // checks_performed
	is.Equal(m["issues_detected"], float64(3))   // issues_detected
	is.Equal(m["monitored_ports"], float64(7))   // monitored_ports

	status, m = e.call(t, "POST", "/api/ports/health-check", "", "")
	is.Equal(status, http.StatusOK) // health-check
	is.Equal(e.wd.sweeps, 1)        // ran one sweep
	is.Equal(m["duration_ms"], 1.5) // its result
	ports := m["ports"].([]any)
	is.Equal(len(ports), 1)                                    // one port checked
	is.Equal(ports[0].(map[string]any)["service_name"], "api") // the stub's
	is.Equal(ports[0].(map[string]any)["health"], "healthy")   // with its health
	is.Equal(m["conflicts"], []any{})                          // an empty list, not null
}

func TestHealthz(t *testing.T) {
	is := is.New(t)
	e := newEnv(t, func(c *Config) { c.Token = "s3cret" })
	status, m := e.call(t, "GET", "/healthz", "", "")
	is.Equal(status, http.StatusOK) // open without a token
	is.Equal(m["status"], "ok")     // says ok
}

func TestNotFoundAndMethod(t *testing.T) {
	e := newEnv(t)
	status, m := e.call(t, "GET", "/api/ports/nothing", "", "")
	checkError(t, status, m, http.StatusNotFound, ledger.ENOTFOUND)
	status, m = e.call(t, "PATCH", "/api/ports/status", "", "")
	checkError(t, status, m, http.StatusMethodNotAllowed, EMETHOD)
}

func TestInternalErrorIsHidden(t *testing.T) {
	is := is.New(t)
	var e *testEnv
	e = newEnv(t, func(c *Config) { c.Service = failingHistory{c.Service} })
	status, m := e.call(t, "GET", "/api/ports/history", "", "")
	checkError(t, status, m, http.StatusInternalServerError, ledger.EINTERNAL)
	is.Equal(m["error"], "internal error")                         // no details to the caller
	is.True(strings.Contains(e.logs.String(), "/var/secret/disk")) // details in the log
}

// failingHistory is a service whose History fails with a storage error.
type failingHistory struct{ ledger.Service }

func (f failingHistory) History(context.Context, ledger.HistoryQuery) ([]ledger.Event, error) {
	return nil, fmt.Errorf("read /var/secret/disk: input/output error")
}

func TestBadRequestsChangeNothing(t *testing.T) {
	e := newEnv(t)
	held := e.allocate(t, "api")
	free := held.Port + 50
	hp := strconv.Itoa(held.Port)
	fp := strconv.Itoa(free)
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		code   string
	}{
		{"malformed JSON", "POST", "/api/ports/allocations", `{"service_name":"x",`, 400, ledger.EINVALID},
		{"not JSON", "POST", "/api/ports/allocations", `service_name=x`, 400, ledger.EINVALID},
		{"empty body", "POST", "/api/ports/allocations", ``, 400, ledger.EINVALID},
		{"two values", "POST", "/api/ports/allocations", `{"service_name":"x"}{"service_name":"y"}`, 400, ledger.EINVALID},
		{"unknown field", "POST", "/api/ports/allocations", `{"service_name":"x","colour":"red"}`, 400, ledger.EINVALID},
		{"port as string", "POST", "/api/ports/allocations", `{"service_name":"x","port":"27001"}`, 400, ledger.EINVALID},
		{"port 70000 in body", "POST", "/api/ports/allocations", `{"service_name":"x","port":70000}`, 400, ledger.EINVALID},
		{"negative port in body", "POST", "/api/ports/allocations", `{"service_name":"x","port":-1}`, 400, ledger.EINVALID},
		{"negative pid", "POST", "/api/ports/allocations", `{"service_name":"x","pid":-5}`, 400, ledger.EINVALID},
		{"pid of no process", "POST", "/api/ports/allocations", `{"service_name":"x","pid":4206649}`, 400, ledger.EINVALID},
		{"1 MiB body", "POST", "/api/ports/allocations", `{"service_name":"x","purpose":"` + strings.Repeat("a", 1<<20) + `"}`, 400, ledger.EINVALID},
		{"10 KB service name", "POST", "/api/ports/allocations", `{"service_name":"` + strings.Repeat("s", 10000) + `"}`, 400, ledger.EINVALID},
		{"name with a newline", "POST", "/api/ports/allocations", `{"service_name":"api\nx"}`, 400, ledger.EINVALID},
		{"purpose with a newline", "POST", "/api/ports/allocations", `{"service_name":"api","purpose":"a\nb"}`, 400, ledger.EINVALID},
		{"no service name", "POST", "/api/ports/allocations", `{"purpose":"p"}`, 400, ledger.EINVALID},
		{"preferred port held", "POST", "/api/ports/allocations", `{"service_name":"x","port":` + hp + `}`, 409, ledger.ECONFLICT},
		{"path port 0", "GET", "/api/ports/allocations/0", ``, 400, ledger.EINVALID},
		{"path port 70000", "GET", "/api/ports/allocations/70000", ``, 400, ledger.EINVALID},
		{"path port not a number", "GET", "/api/ports/allocations/http", ``, 400, ledger.EINVALID},
		{"release path port 0", "DELETE", "/api/ports/allocations/0", ``, 400, ledger.EINVALID},
		{"pid path port 70000", "POST", "/api/ports/allocations/70000/pid", `{"pid":1234}`, 400, ledger.EINVALID},
		{"DELETE of a free port", "DELETE", "/api/ports/allocations/" + fp, ``, 404, ledger.ENOTFOUND},
		{"DELETE with a bad event_id", "DELETE", "/api/ports/allocations/" + hp + "?event_id=nope", ``, 400, ledger.EINVALID},
		{"DELETE of another allocation", "DELETE", "/api/ports/allocations/" + hp + "?event_id=" + ulid.Make().String(), ``, 409, ledger.ECONFLICT},
		{"pid to a free port", "POST", "/api/ports/allocations/" + fp + "/pid", fmt.Sprintf(`{"pid":%d}`, os.Getpid()), 404, ledger.ENOTFOUND},
		{"negative pid registered", "POST", "/api/ports/allocations/" + hp + "/pid", `{"pid":-1}`, 400, ledger.EINVALID},
		{"pid of no process registered", "POST", "/api/ports/allocations/" + hp + "/pid", `{"pid":4206649}`, 400, ledger.EINVALID},
		{"pid as string", "POST", "/api/ports/allocations/" + hp + "/pid", `{"pid":"1234"}`, 400, ledger.EINVALID},
		{"pid missing", "POST", "/api/ports/allocations/" + hp + "/pid", `{}`, 400, ledger.EINVALID},
		{"negative stats", "POST", "/api/ports/allocations/" + hp + "/stats", `{"request_count":-1,"error_count":0}`, 400, ledger.EINVALID},
		{"stats missing a count", "POST", "/api/ports/allocations/" + hp + "/stats", `{"request_count":1}`, 400, ledger.EINVALID},
		{"stats to a free port", "POST", "/api/ports/allocations/" + fp + "/stats", `{"request_count":1,"error_count":0}`, 404, ledger.ENOTFOUND},
		{"bad range", "PUT", "/api/ports/range", `{"port_range":"9000-8000"}`, 400, ledger.EINVALID},
		{"range leaving an allocation out", "PUT", "/api/ports/range", `{"port_range":"28000-28100"}`, 400, ledger.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			before := e.state(t)
			status, m := e.call(t, tt.method, tt.path, tt.body, "")
			checkError(t, status, m, tt.status, tt.code)
			is.Equal(e.state(t), before) // the log is unchanged
		})
	}
}
