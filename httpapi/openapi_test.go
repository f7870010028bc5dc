package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/matryer/is"
	"github.com/oklog/ulid/v2"
	"github.com/portledger/portledger/ledger"
)

// oaDoc is the part of the OpenAPI document the tests read.
type oaDoc struct {
	OpenAPI    string                            `json:"openapi"`
	Paths      map[string]map[string]oaOperation `json:"paths"`
	Components struct{ Schemas map[string]any }  `json:"components"`
}

type oaOperation struct {
	Responses map[string]struct {
		Content map[string]struct {
			Schema  any `json:"schema"`
			Example any `json:"example"`
		} `json:"content"`
	} `json:"responses"`
}

func loadOpenAPI(t *testing.T) oaDoc {
	t.Helper()
	var doc oaDoc
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("httpapi/openapi.json is not JSON: %v", err)
	}
	return doc
}

// stubFleet stands in for the fleet's NATS reader only so that the fleet's
// routes are mounted for the walk; no request reaches it.
type stubFleet struct{}

func (stubFleet) Status(context.Context, ulid.ULID) (ledger.FleetView, error) {
	return ledger.FleetView{}, nil
}
func (stubFleet) Hosts(context.Context) ([]ledger.FleetHostRange, error) { return nil, nil }
func (stubFleet) Who(context.Context, string, int, ulid.ULID) (ledger.WhoAnswer, error) {
	return ledger.WhoAnswer{}, nil
}
func (stubFleet) Find(context.Context, string) ([]ledger.FleetPlacement, error) { return nil, nil }
func (stubFleet) History(context.Context, ledger.FleetHistoryQuery) ([]ledger.FleetEvent, error) {
	return nil, nil
}
func (stubFleet) Usage(context.Context, ledger.UsageQuery) ([]ledger.FleetUsage, error) {
	return nil, nil
}

// TestOpenAPIDescribesEveryRoute walks the real router, with every optional
// part configured, against the document's paths, both ways.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	is := is.New(t)
	doc := loadOpenAPI(t)
	is.Equal(doc.OpenAPI, "3.1.0") // OpenAPI 3.1
	e := newEnv(t)
	// The router inside NewServer's security guard (middleware.go).
	h := routes(Config{Service: e.svc, Events: e.svc, Watchdog: e.wd, Metrics: NewMetrics(MetricsConfig{Version: "test"}), Fleet: stubFleet{},
		Logger: slog.Default(), Now: time.Now, Heartbeat: DefaultHeartbeat})
	rs, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("routes no longer returns the chi router (%T): walk the router it builds", h)
	}
	served := map[string]bool{}
	err := chi.Walk(rs, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		// chi's trailing wildcard is one path parameter in OpenAPI.
		if p, ok := strings.CutSuffix(route, "/*"); ok {
			route = p + "/{path}"
		}
		served[method+" "+route] = true
		return nil
	})
	is.NoErr(err) // walk the router
	described := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			described[strings.ToUpper(method)+" "+path] = true
		}
	}
	for r := range served {
		if !described[r] {
			method, path, _ := strings.Cut(r, " ")
			t.Errorf("route %s is served but not described: add %q with %q (its responses and their schemas) under \"paths\" in httpapi/openapi.json", r, path, strings.ToLower(method))
		}
	}
	for r := range described {
		if !served[r] {
			t.Errorf("httpapi/openapi.json describes %s, which the router does not serve: remove it or add the route", r)
		}
	}
}

// TestOpenAPIAnswersMatchTheirSchemas makes real requests to the real
// server and checks each answer against the schema the document gives for
// its status; every example in the document must be among those answers'
// operations and fit its schema too. The schemas are checked by a small
// hand-written validator (types, required fields, properties, items, enum,
// date-time, $ref): no JSON-schema library is a dependency of the module.
func TestOpenAPIAnswersMatchTheirSchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	e := newEnv(t)
	port := 0
	p := func(s string) string { return strings.ReplaceAll(s, "{port}", strconv.Itoa(port)) }
	covered := map[string]bool{}
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/api/openapi.json", "", 200},
		{"POST", "/api/ports/allocations", `{"service_name":"grace_backend","started_by":"serve.py","purpose":"Main API server"}`, 201},
		{"GET", "/api/ports/status", "", 200},
		{"GET", "/api/ports/allocations", "", 200},
		{"GET", "/api/ports/allocations/{port}", "", 200},
		{"POST", "/api/ports/allocations", `{"service_name":"other","port":{port}}`, 409},
		{"POST", "/api/ports/allocations", `{"service_name":""}`, 400},
		{"POST", "/api/ports/allocations/{port}/stats", `{"request_count":3,"error_count":1}`, 204},
		{"GET", "/api/ports/who/{port}", "", 200},
		{"GET", "/api/ports/history", "", 200},
		{"GET", "/api/ports/usage", "", 200},
		{"GET", "/api/ports/watchdog/status", "", 200},
		{"POST", "/api/ports/health-check", "", 200},
		{"PUT", "/api/ports/range", `{"port_range":"` + testRange.String() + `"}`, 204},
		{"DELETE", "/api/ports/allocations/{port}", "", 200},
		{"GET", "/api/ports/allocations/{port}", "", 404},
		{"GET", "/api/fleet/status", "", 404},
	} {
		name := c.method + " " + c.path + " " + strconv.Itoa(c.status)
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			status, raw := e.raw(t, c.method, p(c.path), p(c.body), "")
			is.Equal(status, c.status) // the answer's status
			if port == 0 && status == 201 {
				var a ledger.Allocation
				is.NoErr(json.Unmarshal(raw, &a))
				port = a.Port
			}
			op, ok := doc.Paths[c.path][strings.ToLower(c.method)]
			if !ok {
				t.Fatalf("%s %s is not described", c.method, c.path)
			}
			resp, ok := op.Responses[strconv.Itoa(c.status)]
			if !ok {
				t.Fatalf("%s %s: status %d is not described", c.method, c.path, c.status)
			}
			media, ok := resp.Content["application/json"]
			if !ok {
				is.Equal(len(strings.TrimSpace(string(raw))), 0) // no JSON described, no body sent
				return
			}
			var body any
			is.NoErr(json.Unmarshal(raw, &body)) // a JSON answer
			if errs := validate(doc, media.Schema, body, "answer"); len(errs) > 0 {
				t.Errorf("the answer does not fit its schema:\n  %s\nanswer: %s", strings.Join(errs, "\n  "), raw)
			}
			if media.Example != nil {
				covered[c.method+" "+c.path+" "+strconv.Itoa(c.status)] = true
				if errs := validate(doc, media.Schema, media.Example, "example"); len(errs) > 0 {
					t.Errorf("the example does not fit its schema:\n  %s", strings.Join(errs, "\n  "))
				}
			}
		})
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for status, resp := range op.Responses {
				for _, media := range resp.Content {
					if media.Example != nil && !covered[strings.ToUpper(method)+" "+path+" "+status] {
						t.Errorf("the example of %s %s %s is not produced by a real request in this test: add one", strings.ToUpper(method), path, status)
					}
				}
			}
		}
	}
}

// validate checks v against a JSON schema of the document and returns what
// does not fit, each with its place.
func validate(doc oaDoc, schema any, v any, at string) []string {
	s, ok := schema.(map[string]any)
	if !ok {
		return nil
	}
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		target, ok := doc.Components.Schemas[name]
		if !ok {
			return []string{fmt.Sprintf("%s: no schema %s", at, ref)}
		}
		return validate(doc, target, v, at)
	}
	var errs []string
	if typ, ok := s["type"].(string); ok && !fitsType(typ, v) {
		return []string{fmt.Sprintf("%s: %v is not %s", at, v, typ)}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", at, v, enum))
	}
	if s["format"] == "date-time" {
		if str, _ := v.(string); str != "" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a date-time", at, str))
			}
		}
	}
	if m, ok := v.(map[string]any); ok {
		req, _ := s["required"].([]any)
		for _, r := range req {
			if _, ok := m[r.(string)]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required %q is missing", at, r))
			}
		}
		props, _ := s["properties"].(map[string]any)
		for k, ps := range props {
			if pv, ok := m[k]; ok {
				errs = append(errs, validate(doc, ps, pv, at+"."+k)...)
			}
		}
	}
	if a, ok := v.([]any); ok {
		for i, item := range a {
			errs = append(errs, validate(doc, s["items"], item, fmt.Sprintf("%s[%d]", at, i))...)
		}
	}
	return errs
}

func fitsType(typ string, v any) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	}
	return true
}

func TestValidateCatchesMismatches(t *testing.T) {
	doc := loadOpenAPI(t)
	for _, c := range []struct {
		name string
		v    string
		bad  bool
	}{
		{"fits", `{"error":"x","code":"invalid"}`, false},
		{"missing field", `{"error":"x"}`, true},
		{"wrong type", `{"error":1,"code":"invalid"}`, true},
		{"not in enum", `{"error":"x","code":"nope"}`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			var v any
			is.NoErr(json.Unmarshal([]byte(c.v), &v))
			errs := validate(doc, map[string]any{"$ref": "#/components/schemas/Error"}, v, "v")
			is.Equal(len(errs) > 0, c.bad) // the validator sees what does not fit
		})
	}
}
