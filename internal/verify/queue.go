package verify

import (
	"context"
	"errors"
)

// A flight is the one shared verify call for a key, and the requests
// waiting for its answer.
//
// Its call runs detached from any one request (context.WithoutCancel plus
// its own Timeout), so that the first request going away fails no one
// else. But while it waits for a slot (Config.MaxVerifyCalls) it is only
// there for its waiters: when the last of them gives up, it leaves the
// queue at once, under the same lock, and never takes a slot. Once it
// holds one, it goes on and fills the cache even if every waiter has gone,
// as before the cap.
type flight struct {
	done chan struct{} // closed when dec and err are set
	dec  Decision
	err  error

	// Under Engine.fmu.
	waiters int  // requests waiting for done
	queued  bool // counted in Engine.waiting
	started bool // holds a slot (or needs none): no longer abandoned
	leave   context.CancelFunc
}

// errAbandoned ends a flight whose every waiter gave up while it queued;
// no one reads it.
var errAbandoned = errors.New("every request for this key gave up while its call was queued")

// ErrQueued is matched (errors.Is) by the error of a Check whose request
// gave up while its key's call still waited for a slot
// (Config.MaxVerifyCalls). It is an UnavailableError too: the key service
// was too busy to answer in time, and the caller should answer 503.
var ErrQueued = errors.New("no free verify slot before the request gave up (max_verify_calls)")

// join makes the request with ctx a waiter of key's flight, starting one
// when there is none.
func (e *Engine) join(ctx context.Context, key string, fp fingerprint) *flight {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	if f, ok := e.flights[fp]; ok {
		f.waiters++
		return f
	}
	f := &flight{done: make(chan struct{}), waiters: 1}
	if !e.enter() {
		f.err = &UnavailableError{RetryAfter: e.cfg.BreakerCooldown, Err: errClosed}
		close(f.done)
		return f
	}
	var wait context.Context
	wait, f.leave = context.WithCancel(context.WithoutCancel(ctx))
	e.flights[fp] = f
	go e.fly(wait, f, key, fp)
	return f
}

// fly runs f's call and hands its answer to the waiters. wait is cancelled
// when the last waiter leaves f in the queue.
func (e *Engine) fly(wait context.Context, f *flight, key string, fp fingerprint) {
	defer e.inflight.Done()
	defer f.leave()
	f.dec, f.err = e.call(wait, f, key, fp)
	e.fmu.Lock()
	if e.flights[fp] == f {
		delete(e.flights, fp)
	}
	e.fmu.Unlock()
	close(f.done)
}

// acquire takes a slot for f, queueing while every slot is taken, until a
// slot frees or the last waiter leaves (wait is done). It reports whether
// f holds a slot; release gives it back.
func (e *Engine) acquire(wait context.Context, f *flight) bool {
	if e.slots == nil {
		return e.start(f)
	}
	select {
	case e.slots <- struct{}{}:
		if e.start(f) {
			return true
		}
		<-e.slots
		return false
	default:
	}
	e.fmu.Lock()
	if f.waiters == 0 {
		e.fmu.Unlock()
		return false
	}
	f.queued = true
	e.waiting++
	e.fmu.Unlock()
	e.obs.VerifyQueued()
	select {
	case e.slots <- struct{}{}:
		if e.start(f) {
			return true
		}
		<-e.slots
		return false
	case <-wait.Done():
		return false // the last waiter left; it took f off the gauge
	}
}

// start marks f as holding its slot, unless every waiter has left.
func (e *Engine) start(f *flight) bool {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	if f.queued {
		f.queued = false
		e.waiting--
	}
	if f.waiters == 0 {
		return false
	}
	f.started = true
	return true
}

func (e *Engine) release() {
	if e.slots != nil {
		<-e.slots
	}
}

// leave takes a request that gives up off f. It reports whether f was
// queued for a slot: then the request never had its call. When it was the
// last waiter and f holds no slot yet, f leaves the queue with it.
func (e *Engine) leave(fp fingerprint, f *flight) (queued bool) {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	f.waiters--
	queued = f.queued
	if f.waiters == 0 && !f.started {
		if f.queued {
			f.queued = false
			e.waiting--
		}
		f.leave()
		if e.flights[fp] == f {
			delete(e.flights, fp) // the next request for the key starts afresh
		}
	}
	return queued
}
