package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}

// requestError is a malformed request body, answered 400 (or 413 for a body
// over MaxBodyBytes).
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// decode reads one JSON object into v: unknown fields, trailing data, wrong
// types and oversize bodies are errors with a message that names the problem.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &requestError{http.StatusUnsupportedMediaType, "Content-Type must be application/json"}
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooBig *http.MaxBytesError
	if err == nil {
		_, terr := dec.Token()
		switch {
		case terr == io.EOF:
			return nil
		case errors.As(terr, &tooBig): // an object padded past the limit
			return &requestError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
		}
		return &requestError{http.StatusBadRequest, "request body must hold a single JSON object"}
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return &requestError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
	case errors.Is(err, io.EOF):
		return &requestError{http.StatusBadRequest, "request body is empty; send a JSON object"}
	case errors.As(err, &syn):
		return &requestError{http.StatusBadRequest, fmt.Sprintf("request body is not valid JSON (at byte %d)", syn.Offset)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &requestError{http.StatusBadRequest, "request body is truncated JSON"}
	case errors.As(err, &typ):
		if typ.Field != "" {
			return &requestError{http.StatusBadRequest, fmt.Sprintf("field %q must be a JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()))}
		}
		return &requestError{http.StatusBadRequest, "request body must be a JSON object"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return &requestError{http.StatusBadRequest, "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")}
	}
	return &requestError{http.StatusBadRequest, "request body could not be read as JSON"}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "int", "int64", "float64":
		return "number"
	}
	return "value of another type"
}

// readBody decodes the body into v or answers the error; it reports success.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := decode(r, v); err != nil {
		var re *requestError
		errors.As(err, &re)
		code := "bad_request"
		switch re.status {
		case http.StatusRequestEntityTooLarge:
			code = "payload_too_large"
		case http.StatusUnsupportedMediaType:
			code = "unsupported_media_type"
		}
		writeErr(w, re.status, code, re.msg)
		return false
	}
	return true
}

// each converts every item of a list for its JSON answer. An empty list
// is [] in JSON, never null, as every list answer promises.
func each[T, J any](items []T, to func(T) J) []J {
	out := make([]J, 0, len(items))
	for _, it := range items {
		out = append(out, to(it))
	}
	return out
}

// noContent ends a call that answers nothing: 204, or err's answer.
func (s *Server) noContent(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
