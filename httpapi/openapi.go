package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3.1 description of every route of routes.go.
// TestOpenAPIDescribesEveryRoute holds the two together.
//
//go:embed openapi.json
var openAPI []byte

// handleOpenAPI serves the description.
func handleOpenAPI() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	}
}
