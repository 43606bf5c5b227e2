// Package api holds the OpenAPI 3.1 description of the key service's HTTP
// API (openapi.yaml) and the test that keeps it true to the server's routes.
// The description is embedded so the service, or a tool, can hand it out.
package api

import _ "embed"

// OpenAPI is openapi.yaml, byte for byte.
//
//go:embed openapi.yaml
var OpenAPI []byte
