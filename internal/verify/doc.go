// Package verify is the sidecar's engine, free of Caddy: it decides whether
// an API key may enter one app. It rejects malformed keys locally, asks the
// key service over HTTP (POST /v1/verify) about the rest, keeps the answers
// in bounded LRU caches keyed by a hash of the key, coalesces concurrent
// misses, serves known-valid keys for a while when the key service fails,
// stops calling a failing key service through a circuit breaker, and follows
// the key service's change feed (GET /v1/events) so that a revoked key is
// refused within a second even with a long cache TTL.
//
// The caddymodule package wires it into Caddy; nothing here knows about
// Caddy, so the engine can be tested and benchmarked on its own.
package verify
