package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// pool is a set of long-polls on GET /v1/events, each on a connection of
// its own, written by hand on a raw connection so that a subscriber costs
// the harness a goroutine and a 4 KiB buffer, not an http.Transport's
// machinery: the harness shares the machine with the service it measures.
type pool struct {
	addr string
	wait time.Duration

	mu      sync.Mutex
	conns   []net.Conn
	pending map[string]*revocation // by key id
	closing atomic.Bool
	wg      sync.WaitGroup

	answers   atomic.Int64 // answers with at least one event
	empty     atomic.Int64 // answers with none (a wait that ran out)
	foreign   atomic.Int64 // events of an app other than the subscriber's
	failures  atomic.Int64
	lastError atomic.Value // string
}

// revocation is a revoke whose subscribers are being timed.
type revocation struct {
	start     time.Time
	app       string
	remaining int
	latencies []time.Duration
	done      chan struct{}
}

type eventsAnswer struct {
	Events []struct {
		Seq   int64  `json:"seq"`
		KeyID string `json:"key_id"`
		AppID string `json:"app_id"`
	} `json:"events"`
	Next int64 `json:"next"`
}

// open connects n subscribers from cursor, perApp to an app in turn (the
// last app may have fewer), dialing
// from sources client addresses, 256 dials at a time (the listen backlog
// is a few thousand on this kind of machine).
func (p *pool) open(ctx context.Context, n int, apps []app, perApp, sources int, cursor int64) error {
	p.pending = map[string]*revocation{}
	sem := make(chan struct{}, 256)
	var firstErr error
	var mu sync.Mutex
	var dials sync.WaitGroup
	for i := range n {
		a := apps[i/perApp]
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%sources))}
		sem <- struct{}{}
		dials.Go(func() {
			defer func() { <-sem }()
			d := net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}
			c, err := d.DialContext(ctx, "tcp", p.addr)
			if err != nil {
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				mu.Unlock()
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			p.wg.Go(func() { p.follow(c, a, cursor) })
		})
		if firstErr != nil {
			break
		}
	}
	dials.Wait()
	return firstErr
}

// follow long-polls a's feed on c until the pool closes.
func (p *pool) follow(c net.Conn, a app, cursor int64) {
	br := bufio.NewReaderSize(c, 4096)
	for {
		req := fmt.Sprintf("GET /v1/events?after=%d&wait=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", cursor, p.wait, p.addr, a.token)
		if _, err := io.WriteString(c, req); err != nil {
			p.fail(err)
			return
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			p.fail(err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		now := time.Now()
		if err != nil || resp.StatusCode != http.StatusOK {
			p.fail(fmt.Errorf("status %d: %s %v", resp.StatusCode, body, err))
			return
		}
		var ans eventsAnswer
		if err := json.Unmarshal(body, &ans); err != nil {
			p.fail(err)
			return
		}
		if len(ans.Events) == 0 {
			p.empty.Add(1)
		} else {
			p.answers.Add(1)
		}
		for _, e := range ans.Events {
			if e.AppID != a.id {
				p.foreign.Add(1)
			}
			p.seen(e.KeyID, now)
		}
		cursor = ans.Next
	}
}

func (p *pool) fail(err error) {
	if p.closing.Load() {
		return
	}
	p.failures.Add(1)
	p.lastError.Store(err.Error())
}

// expect starts timing the revocation of key, of app, that perApp
// subscribers must each receive.
func (p *pool) expect(key, app string, perApp int, start time.Time) *revocation {
	r := &revocation{start: start, app: app, remaining: perApp, done: make(chan struct{})}
	p.mu.Lock()
	p.pending[key] = r
	p.mu.Unlock()
	return r
}

func (p *pool) seen(key string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.pending[key]
	if r == nil || r.remaining == 0 {
		return
	}
	r.latencies = append(r.latencies, at.Sub(r.start))
	if r.remaining--; r.remaining == 0 {
		close(r.done)
	}
}

// close ends every long-poll and waits for their goroutines.
func (p *pool) close() {
	p.closing.Store(true)
	p.mu.Lock()
	for _, c := range p.conns {
		// No TIME_WAIT left behind for the next size's dials.
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *pool) err() error {
	if n := p.failures.Load(); n > 0 {
		return fmt.Errorf("%d long-polls failed, last: %v", n, p.lastError.Load())
	}
	return nil
}
