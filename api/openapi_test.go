package api

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/appkeys/appkeys/internal/httpapi"
)

// methods are the operation keys of an OpenAPI path item.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type doc = map[string]any

func load(t *testing.T) doc {
	t.Helper()
	var d doc
	if err := yaml.Unmarshal(OpenAPI, &d); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	return d
}

func obj(v any) doc {
	m, _ := v.(doc)
	return m
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// resolve follows a local "$ref" ("#/components/...") to its node.
func resolve(d doc, ref string) (any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("only local references are used here, got %q", ref)
	}
	var node any = d
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m := obj(node)
		if m == nil {
			return nil, fmt.Errorf("%q: %q is not inside an object", ref, part)
		}
		next, ok := m[part]
		if !ok {
			return nil, fmt.Errorf("%q does not resolve: no %q", ref, part)
		}
		node = next
	}
	return node, nil
}

// deref returns v, or what its $ref points to.
func deref(t *testing.T, d doc, v any) doc {
	t.Helper()
	m := obj(v)
	if ref, ok := m["$ref"].(string); ok {
		n, err := resolve(d, ref)
		if err != nil {
			t.Fatal(err)
		}
		return obj(n)
	}
	return m
}

// operations calls f for every operation of the description.
func operations(d doc, f func(path, method string, pathItem, op doc)) {
	paths := obj(d["paths"])
	keys := make([]string, 0, len(paths))
	for p := range paths {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	for _, p := range keys {
		item := obj(paths[p])
		for _, m := range methods {
			if op := obj(item[m]); op != nil {
				f(p, m, item, op)
			}
		}
	}
}

var placeholder = regexp.MustCompile(`\{([^}]+)\}`)

// The description holds together on its own: every reference resolves,
// every path placeholder is a declared parameter and the other way round,
// every operation has an id, a summary and answers, every security scheme
// used exists, and every authenticated operation documents its 401.
func TestOpenAPIIsValid(t *testing.T) {
	d := load(t)
	if v, _ := d["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi: %q, want 3.1.x", v)
	}
	info := obj(d["info"])
	if info["title"] == nil || info["version"] == nil {
		t.Error("info needs a title and a version")
	}

	// Every $ref anywhere resolves.
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch n := v.(type) {
		case doc:
			if ref, ok := n["$ref"].(string); ok {
				if _, err := resolve(d, ref); err != nil {
					t.Errorf("%s: %v", path, err)
				}
			}
			for k, c := range n {
				walk(path+"/"+k, c)
			}
		case []any:
			for i, c := range n {
				walk(path+"/"+strconv.Itoa(i), c)
			}
		}
	}
	walk("#", d)

	schemes := obj(obj(d["components"])["securitySchemes"])
	for name, s := range schemes {
		if sc := obj(s); sc["type"] != "http" || sc["scheme"] != "bearer" {
			t.Errorf("security scheme %s is not HTTP bearer", name)
		}
	}
	checkSecurity := func(where string, reqs []any) {
		for _, r := range reqs {
			for name := range obj(r) {
				if _, ok := schemes[name]; !ok {
					t.Errorf("%s: unknown security scheme %q", where, name)
				}
			}
		}
	}
	checkSecurity("top level", list(d["security"]))

	ids := map[string]string{}
	operations(d, func(path, method string, item, op doc) {
		where := strings.ToUpper(method) + " " + path
		if !strings.HasPrefix(path, "/") {
			t.Errorf("%s: a path must start with /", where)
		}
		id, _ := op["operationId"].(string)
		if id == "" {
			t.Errorf("%s: no operationId", where)
		} else if other, dup := ids[id]; dup {
			t.Errorf("%s: operationId %q is also %s's", where, id, other)
		}
		ids[id] = where
		if op["summary"] == nil {
			t.Errorf("%s: no summary", where)
		}

		// Path placeholders and declared path parameters match exactly.
		declared := map[string]bool{}
		for _, ps := range [][]any{list(item["parameters"]), list(op["parameters"])} {
			for _, p := range ps {
				pm := deref(t, d, p)
				if pm["in"] == "path" {
					if pm["required"] != true {
						t.Errorf("%s: path parameter %v must be required", where, pm["name"])
					}
					declared[fmt.Sprint(pm["name"])] = true
				}
			}
		}
		for _, m := range placeholder.FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: placeholder {%s} is not a declared path parameter", where, m[1])
			}
			delete(declared, m[1])
		}
		for name := range declared {
			t.Errorf("%s: path parameter %q is not in the path", where, name)
		}

		// Answers: at least one success, each with a description, errors in
		// the API's error shape.
		responses := obj(op["responses"])
		if len(responses) == 0 {
			t.Errorf("%s: no responses", where)
		}
		success := false
		for code, r := range responses {
			n, err := strconv.Atoi(code)
			if err != nil || n < 100 || n > 599 {
				t.Errorf("%s: response %q is not a status code", where, code)
				continue
			}
			success = success || n < 300
			resp := deref(t, d, r)
			if resp["description"] == nil {
				t.Errorf("%s %s: no description", where, code)
			}
			if n >= 400 {
				schema := obj(obj(obj(resp["content"])["application/json"])["schema"])
				if schema["$ref"] != "#/components/schemas/Error" {
					t.Errorf("%s %s: an error answer must use the Error schema", where, code)
				}
			}
		}
		if !success {
			t.Errorf("%s: no success response", where)
		}

		// Security: an operation that needs a token names a known scheme
		// and documents the 401 for a missing or bad one.
		sec, hasOwn := op["security"]
		if !hasOwn {
			sec = d["security"]
		}
		checkSecurity(where, list(sec))
		if len(list(sec)) > 0 && responses["401"] == nil {
			t.Errorf("%s: needs a token but documents no 401", where)
		}
		if body := obj(op["requestBody"]); body != nil {
			schema := deref(t, d, obj(obj(obj(body["content"])["application/json"])["schema"]))
			// A body the server does not define (GitHub's leak reports,
			// which may grow fields) says so with x-unknown-fields.
			if schema["additionalProperties"] != false && op["x-unknown-fields"] != "ignored" {
				t.Errorf("%s: the request schema must forbid unknown fields, as the server does", where)
			}
		}
	})
	if len(ids) == 0 {
		t.Fatal("no operations")
	}
}

// routeKey normalizes "METHOD /path/{name}" so that placeholder names,
// which never reach the wire, do not matter.
func routeKey(method, path string) string {
	return strings.ToUpper(method) + " " + placeholder.ReplaceAllString(path, "{}")
}

// The description and the server agree on every endpoint, both ways.
func TestOpenAPIMatchesServerRoutes(t *testing.T) {
	d := load(t)
	var documented []string
	operations(d, func(path, method string, _, _ doc) {
		documented = append(documented, routeKey(method, path))
	})
	var served []string
	for _, r := range httpapi.Routes() {
		method, path, ok := strings.Cut(r, " ")
		if !ok {
			t.Fatalf("route %q is not \"METHOD /path\"", r)
		}
		served = append(served, routeKey(method, path))
	}
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("the server serves %s, which openapi.yaml does not describe", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("openapi.yaml describes %s, which the server does not serve", r)
		}
	}
}

// schemaKeywords are the words a schema object may use (JSON Schema 2020-12
// as OpenAPI 3.1 takes it, plus OpenAPI's own). A YAML flow mapping whose
// description holds an unquoted comma splits into a stray key such as
// "shown this once." that YAML parsers accept without a word; this catches
// it in go test as well as in the Redocly lint of make test.
var schemaKeywords = map[string]bool{
	"$ref": true, "$id": true, "$schema": true, "$defs": true, "$comment": true, "$anchor": true,
	"type": true, "enum": true, "const": true, "format": true, "title": true, "description": true,
	"default": true, "examples": true, "example": true, "deprecated": true, "readOnly": true, "writeOnly": true,
	"properties": true, "required": true, "additionalProperties": true, "patternProperties": true,
	"propertyNames": true, "unevaluatedProperties": true, "minProperties": true, "maxProperties": true,
	"items": true, "prefixItems": true, "contains": true, "minItems": true, "maxItems": true, "uniqueItems": true,
	"unevaluatedItems": true, "minContains": true, "maxContains": true,
	"allOf": true, "anyOf": true, "oneOf": true, "not": true, "if": true, "then": true, "else": true,
	"dependentRequired": true, "dependentSchemas": true,
	"minimum": true, "maximum": true, "exclusiveMinimum": true, "exclusiveMaximum": true, "multipleOf": true,
	"minLength": true, "maxLength": true, "pattern": true, "contentEncoding": true, "contentMediaType": true,
	"discriminator": true, "xml": true, "externalDocs": true,
}

// TestOpenAPISchemasUseOnlyKeywords walks every schema, named or inline,
// and refuses a key that is no schema keyword.
func TestOpenAPISchemasUseOnlyKeywords(t *testing.T) {
	d := load(t)
	var schema func(at string, s doc)
	schema = func(at string, s doc) {
		for k, v := range s {
			if !schemaKeywords[k] && !strings.HasPrefix(k, "x-") {
				t.Errorf("%s: %q is not a schema keyword (an unquoted comma in a flow mapping?)", at, k)
			}
			switch k {
			case "properties", "patternProperties", "$defs", "dependentSchemas":
				for name, sub := range obj(v) {
					schema(at+"/"+k+"/"+name, obj(sub))
				}
			case "items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else":
				if sub := obj(v); sub != nil {
					schema(at+"/"+k, sub)
				}
			case "allOf", "anyOf", "oneOf", "prefixItems":
				for i, sub := range list(v) {
					schema(at+"/"+k+"/"+strconv.Itoa(i), obj(sub))
				}
			}
		}
	}
	for name, s := range obj(obj(d["components"])["schemas"]) {
		schema("#/components/schemas/"+name, obj(s))
	}
	// Inline schemas of parameters, bodies and answers.
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch n := v.(type) {
		case doc:
			for k, c := range n {
				if k == "schema" {
					schema(at+"/schema", obj(c))
					continue
				}
				walk(at+"/"+k, c)
			}
		case []any:
			for i, c := range n {
				walk(at+"/"+strconv.Itoa(i), c)
			}
		}
	}
	walk("#/paths", d["paths"])
	walk("#/components/parameters", obj(d["components"])["parameters"])
	walk("#/components/responses", obj(d["components"])["responses"])
}
