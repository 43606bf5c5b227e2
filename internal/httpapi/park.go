package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// Parked long-polls.
//
// Every sidecar holds a long-poll on GET /v1/events, so a key service holds
// one per sidecar, tens of thousands, nearly all of them waiting. Held by
// net/http, a waiting request keeps its connection's 4 KiB read and write
// buffers, a 2 KiB response buffer and two goroutines with deep stacks:
// about 27 KiB, against the feed's own state of under 1 KiB. A parked
// long-poll gives all of that back while it waits: its handler takes the
// connection from net/http (Hijack) and returns, a small goroutine waits
// on the feed as the handler did, writes the answer itself, and hands the
// connection back to the server through its ParkingListener, where net/http
// reads the sidecar's next request as on a connection just accepted.
//
// Only HTTP/1.1 requests that keep their connection park. HTTP/2 streams
// cannot be taken from net/http and wait as before, as do requests on a
// server that serves no ParkingListener (Server.Park not called).

// ParkingListener is the listener a key service serves: it accepts new
// connections from the listener it wraps, and takes back the connections of
// parked long-polls once they are answered.
type ParkingListener struct {
	net.Listener
	accepted chan accepted
	notify   chan struct{} // a connection came back
	done     chan struct{}

	mu     sync.Mutex
	back   []net.Conn // answered long-polls' connections, for Accept
	closed bool
}

type accepted struct {
	c   net.Conn
	err error
}

// NewParkingListener wraps ln; for TLS, wrap the TLS listener, so that a
// connection taken back is not wrapped twice.
func NewParkingListener(ln net.Listener) *ParkingListener {
	l := &ParkingListener{Listener: ln, accepted: make(chan accepted), notify: make(chan struct{}, 1), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *ParkingListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- accepted{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Accept returns a connection taken back, or else the next new one.
func (l *ParkingListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if n := len(l.back); n > 0 {
			c := l.back[n-1]
			l.back[n-1] = nil
			l.back = l.back[:n-1]
			l.mu.Unlock()
			return c, nil
		}
		l.mu.Unlock()
		select {
		case <-l.notify:
		case a := <-l.accepted:
			return a.c, a.err
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
}

// Close stops accepting and closes the connections waiting to be taken back.
func (l *ParkingListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	back := l.back
	l.back = nil
	l.mu.Unlock()
	close(l.done)
	for _, c := range back {
		c.Close()
	}
	return l.Listener.Close()
}

// takeBack queues c for Accept, or closes it when the listener is closed.
func (l *ParkingListener) takeBack(c net.Conn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return
	}
	l.back = append(l.back, c)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// parkedWriteTimeout bounds writing a parked long-poll's answer.
const parkedWriteTimeout = 10 * time.Second

// parking is where parked long-polls hand their connections back, and
// what ends them.
type parking struct {
	ln  *ParkingListener
	ctx context.Context

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup
}

// Park lets long-polls that must wait leave net/http while they do: ln is
// the listener the server serves, and the end of ctx answers every parked
// long-poll at once, as a waiting one is when its server stops. Call it
// before serving.
func (s *Server) Park(ctx context.Context, ln *ParkingListener) {
	s.parking = &parking{ln: ln, ctx: ctx}
}

// WaitParked waits until every parked long-poll has answered and handed its
// connection back (their ctx must be done), or until ctx ends. No long-poll
// parks after it is called.
func (s *Server) WaitParked(ctx context.Context) error {
	p := s.parking
	if p == nil {
		return nil
	}
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enter counts a long-poll about to park, unless parking is closed.
func (p *parking) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing || p.ctx.Err() != nil {
		return false
	}
	p.wg.Add(1)
	return true
}

// park answers a long-poll from a goroutine of its own, off net/http, and
// reports whether it did; when it did not, the caller answers as usual.
func (s *Server) park(w http.ResponseWriter, r *http.Request, after *int64, wait time.Duration) bool {
	p := s.parking
	sw, ok := w.(*statusWriter)
	if p == nil || !ok || r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Close || !p.enter() {
		return false
	}
	header := w.Header().Clone()
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.wg.Done()
		return false
	}
	sw.parked = true
	// A client that sent its next request before this answer (pipelining)
	// gets this answer and a closed connection: what it sent is in
	// net/http's buffer, which does not go back with the connection.
	// Clients retry such requests on a new connection.
	keep := rw.Reader.Buffered() == 0
	if !keep {
		header.Set("Connection", "close")
	}
	_ = conn.SetDeadline(time.Time{}) // net/http's request deadlines
	// What the answer needs of the request, and nothing that would keep
	// net/http's state for the connection alive while it waits: its
	// buffers are what parking gives back.
	pattern, start := sw.pattern, sw.start
	ctx := context.WithValue(context.WithValue(p.ctx, callerKey, caller(r)), requestIDKey, RequestID(r.Context()))
	r = (&http.Request{Method: r.Method, URL: r.URL}).WithContext(ctx)
	s.parked.Add(1)
	go func() {
		defer p.wg.Done()
		b := &bufferedResponse{header: header}
		func() {
			defer func() {
				if v := recover(); v != nil {
					s.log.Error("panic serving request", "request_id", RequestID(ctx), "route", pattern, "panic", v, "stack", string(debug.Stack()))
					b = &bufferedResponse{header: header}
					writeErr(b, http.StatusInternalServerError, "internal", "internal error (request "+RequestID(ctx)+")")
					keep = false
				}
			}()
			s.answerEvents(b, r, after, wait)
		}()
		s.parked.Add(-1)
		// A server stopping answers its parked long-polls and closes
		// their connections: handed back, they would look like new ones
		// to Shutdown, which waits seconds for those.
		keep = keep && p.ctx.Err() == nil
		// Counted before it is sent, as net/http's middleware counts a
		// held answer before net/http flushes it: a client that reads its
		// answer finds it counted.
		s.record(r, pattern, b.status, start) // 0: 200, as writeTo sends it
		if err := b.writeTo(conn, keep); err != nil || !keep {
			conn.Close()
			return
		}
		p.ln.takeBack(conn)
	}()
	return true
}

// bufferedResponse is a parked long-poll's answer, written whole to its
// connection once made.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

// writeTo writes the answer as net/http would have: HTTP/1.1, a Date and a
// Content-Length.
func (b *bufferedResponse) writeTo(conn net.Conn, keep bool) error {
	b.WriteHeader(http.StatusOK)
	b.header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	b.header.Set("Content-Length", strconv.Itoa(b.body.Len()))
	resp := &http.Response{StatusCode: b.status, ProtoMajor: 1, ProtoMinor: 1, Header: b.header,
		ContentLength: int64(b.body.Len()), Body: io.NopCloser(&b.body), Close: !keep}
	// One write: Response.Write writes each header line on its own, which
	// on a raw connection would be a system call and a packet apiece.
	var out bytes.Buffer
	out.Grow(512 + b.body.Len())
	if err := resp.Write(&out); err != nil {
		return err
	}
	if err := conn.SetWriteDeadline(time.Now().Add(parkedWriteTimeout)); err != nil {
		return err
	}
	if _, err := conn.Write(out.Bytes()); err != nil {
		return err
	}
	return conn.SetWriteDeadline(time.Time{})
}
