package store

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// ListenerApplicationName is the application_name of the LISTEN
// connection, so that an operator (or a test) finds it in
// pg_stat_activity.
const ListenerApplicationName = "appkeys-feed-listener"

// ListenFeed hears the feed's notifications from every replica on a
// connection of its own, outside the pool, and calls heard for each with
// the head it carries (0 for a prune's), and with 0 once after each
// (re)connection for whatever was committed while it was not listening. When the connection is lost it calls lost with the cause
// and connects again, waiting from 100 ms up to 5 s between attempts. It
// returns when ctx ends. On SQLite, which one process writes, it returns
// at once: OnFeedChange hears every write.
func (s *Store) ListenFeed(ctx context.Context, heard func(head int64), lost func(error)) {
	if s.dialect != "postgres" {
		return
	}
	const minWait, maxWait = 100 * time.Millisecond, 5 * time.Second
	wait := minWait
	for {
		listened, err := s.listen(ctx, heard)
		if ctx.Err() != nil {
			return
		}
		lost(err)
		if listened {
			wait = minWait
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxWait)
	}
}

// listen connects, LISTENs and waits for notifications until the
// connection fails; listened tells whether it got as far as listening.
func (s *Store) listen(ctx context.Context, heard func(int64)) (listened bool, err error) {
	cfg, err := pgx.ParseConfig(s.pgDSN)
	if err != nil {
		return false, err
	}
	cfg.RuntimeParams["application_name"] = ListenerApplicationName
	// The connection is idle for as long as nobody writes: keepalives
	// find a peer that vanished without a word within about 30 s (the
	// 1 s head poll covers the meantime).
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3,
	}}
	cfg.DialFunc = d.DialContext
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+FeedChannel); err != nil {
		return false, err
	}
	heard(0)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		head, _ := strconv.ParseInt(n.Payload, 10, 64)
		heard(head)
	}
}
