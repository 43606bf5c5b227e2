package store_test

import "time"

func storetestNow() time.Time { return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) }
