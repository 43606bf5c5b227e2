package store

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// PostgreSQL pool defaults: each replica keeps at most DefaultPoolMaxConns
// connections, closes one idle for DefaultPoolMaxConnIdleTime, and replaces
// each after DefaultPoolMaxConnLifetime, so connections spread again over
// a PgBouncer or a server that restarted behind a load balancer.
const (
	DefaultPoolMaxConns        = 20
	DefaultPoolMaxConnIdleTime = 5 * time.Minute
	DefaultPoolMaxConnLifetime = time.Hour
)

// poolSettings bound a replica's connections to PostgreSQL.
type poolSettings struct {
	maxConns        int
	maxConnIdleTime time.Duration
	maxConnLifetime time.Duration
}

// pgPoolSettings takes the pool settings out of a PostgreSQL URL's query,
// under the names pgxpool users know (pool_max_conns, pool_max_conn_idle_time,
// pool_max_conn_lifetime), and returns the URL without them: left in, pgx
// would send them to the server as run-time parameters, which it refuses.
// Errors never quote the URL, which may hold a password.
func pgPoolSettings(dsn string) (string, poolSettings, error) {
	p := poolSettings{DefaultPoolMaxConns, DefaultPoolMaxConnIdleTime, DefaultPoolMaxConnLifetime}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", p, fmt.Errorf("the PostgreSQL URL does not parse")
	}
	q := u.Query()
	if v := q.Get("pool_max_conns"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return "", p, fmt.Errorf("pool_max_conns in the PostgreSQL URL must be a whole number of at least 1, not %q", v)
		}
		p.maxConns = n
	}
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{{"pool_max_conn_idle_time", &p.maxConnIdleTime}, {"pool_max_conn_lifetime", &p.maxConnLifetime}} {
		if v := q.Get(d.name); v != "" {
			t, err := time.ParseDuration(v)
			if err != nil || t < 0 {
				return "", p, fmt.Errorf("%s in the PostgreSQL URL must be a duration such as 5m or 1h, not %q", d.name, v)
			}
			*d.to = t
		}
	}
	for name := range q {
		switch name {
		case "pool_max_conns", "pool_max_conn_idle_time", "pool_max_conn_lifetime":
			q.Del(name)
		default:
			if strings.HasPrefix(name, "pool_") {
				// pgxpool's other settings (pool_min_conns, ...) have no
				// counterpart in database/sql; passed on, the server would
				// refuse the connection with a puzzling message.
				return "", p, fmt.Errorf("%s in the PostgreSQL URL is not supported: use pool_max_conns, pool_max_conn_idle_time or pool_max_conn_lifetime", name)
			}
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), p, nil
}
