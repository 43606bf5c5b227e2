package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Every request body, on every route (the API's and the console's, which
// share the mux), is bounded here, before authentication and before any
// handler reads it. A handler that answers without reading the body (a
// 401, a 400 for the first bytes, a console redirect) would otherwise
// leave the rest on the wire, and Go's server then closes the connection
// while the client is still sending: the client sees a reset or a broken
// pipe, not the answer.

// MaxBodyBytes bounds every request body but a leak report's
// (keyservice.MaxLeakReportBytes). A secret value may be 64 KiB; JSON
// escaping can grow it, hence the margin.
const MaxBodyBytes = 160 << 10

const (
	// drainBytes bounds how much of a refused body is read and dropped so
	// that a client still sending gets the 413 rather than a reset. Past
	// it, the connection is simply closed.
	drainBytes = 64 << 20
	// drainTime bounds how long a slow sender can hold the connection, and
	// a goroutine, for that.
	drainTime = 10 * time.Second
)

// limitBody lets a body of at most limit bytes through and answers a
// bigger one 413 payload_too_large, reporting whether the request may go
// on. A declared Content-Length over the limit is refused without reading
// a byte. A body of unknown length (chunked) is read up to one byte past
// the limit first, so that it too is refused whatever the route or the
// token, rather than whenever a handler happens to read it; a body within
// the limit is then served from memory, as every handler reads it whole
// anyway.
func limitBody(w http.ResponseWriter, r *http.Request, limit int64) bool {
	switch {
	case r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0:
		return true
	case r.ContentLength > limit:
		refuseBody(w, r, limit)
		return false
	case r.ContentLength > 0:
		// The server stops the body at its declared length.
		return true
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if int64(len(b)) > limit {
		refuseBody(w, r, limit)
		return false
	}
	// A read error (a malformed chunk, a client gone) reaches the handler
	// after the bytes that came, as it would have without this.
	var rest io.Reader = bytes.NewReader(b)
	if err != nil {
		rest = io.MultiReader(rest, errReader{err})
	}
	r.Body = io.NopCloser(rest) // the server closes the real body itself
	return true
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// refuseBody answers 413 at once. Over HTTP/1 it then reads and drops
// what the client still sends (within drainBytes and drainTime), so that
// the client can finish sending and read the answer instead of meeting a
// reset, and closes the connection after: a client that sends bodies this
// big is not one to keep. HTTP/2 needs none of it: the server ends the
// stream with RST_STREAM(NO_ERROR), which tells the client to stop sending
// and keep the answer (RFC 9113, section 8.1), and the connection lives on.
func refuseBody(w http.ResponseWriter, r *http.Request, limit int64) {
	http1 := r.ProtoMajor == 1
	rc := http.NewResponseController(w)
	if http1 {
		// Reading the body after answering needs full duplex.
		_ = rc.EnableFullDuplex()
	}
	msg, _ := json.Marshal(errorBody{Error: errorDetail{
		Code: "payload_too_large", Message: fmt.Sprintf("request body is larger than %d bytes", limit),
	}})
	msg = append(msg, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// A length, so the client can read the whole answer while it is still
	// sending, rather than a chunked answer that ends only with the drain.
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	if http1 {
		h.Set("Connection", "close")
	}
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	_, _ = w.Write(msg)
	// A client that asked before sending (Expect: 100-continue) has been
	// told not to; there is nothing to drain.
	if !http1 || strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	_ = rc.SetReadDeadline(time.Now().Add(drainTime))
	_, _ = io.CopyN(io.Discard, r.Body, drainBytes)
}
