package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// rowScanner is a *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryAll runs a query and scans each row it answers. No row is an empty
// slice, never nil: callers encode lists as [] and never as null. The rows
// are closed when it returns, so a transaction may run its next statement
// (pgx runs one at a time on a connection).
func queryAll[T any](ctx context.Context, q querier, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// notFound is ErrNotFound where a query matched no row, else err.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// one answers the value scanned from a single row, or the classified error
// (ErrNotFound for no row) with the zero value.
func one[T any](v T, err error) (T, error) {
	if err != nil {
		var zero T
		return zero, classify(notFound(err))
	}
	return v, nil
}

// execOne runs a statement that must change a row; when it changes none
// (the row is gone, or not in the state the statement asks for), the
// answer is none.
func execOne(ctx context.Context, tx *sql.Tx, none error, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return none
	}
	return nil
}

// Times are stored as microseconds since the epoch (BIGINT), the same on
// both databases.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// timeCol scans a NOT NULL time column into *t.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	var v sql.NullInt64
	if err := v.Scan(src); err != nil {
		return err
	}
	if !v.Valid {
		return errors.New("NULL in a time column that may not be NULL")
	}
	*c.t = fromMicros(v.Int64)
	return nil
}

// nullTimeCol scans a time column into *t, nil for NULL.
type nullTimeCol struct{ t **time.Time }

func (c nullTimeCol) Scan(src any) error {
	if src == nil {
		*c.t = nil
		return nil
	}
	var t time.Time
	if err := (timeCol{&t}).Scan(src); err != nil {
		return err
	}
	*c.t = &t
	return nil
}
