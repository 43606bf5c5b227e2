package crashtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/store/pgtest"

	_ "modernc.org/sqlite"
)

// The shape of a round's load.
const (
	workers  = 6
	apps     = 2
	pRevoke  = 0.35 // chance that a worker's next call revokes one of its keys
	minAcked = 5    // acknowledged creates before the kill may come
	// maxKillDelay bounds the random moment of the kill after minAcked.
	maxKillDelay = 300 * time.Millisecond
	// maxCalls brings the kill forward on a fast machine, so that a round's
	// audit log fits one ListAudit page (1,000 records).
	maxCalls    = 850
	callTimeout = 10 * time.Second
)

func TestCrashSQLite(t *testing.T) {
	runRounds(t, envInt(t, "APPKEYS_CRASH_ROUNDS", 20), func(testing.TB) string { return "" })
}

// TestCrashPostgres kills the key service, not the database: PostgreSQL
// keeps running while the service dies and restarts.
func TestCrashPostgres(t *testing.T) {
	pgtest.Require(t)
	runRounds(t, envInt(t, "APPKEYS_CRASH_PG_ROUNDS", 5), pgtest.NewDatabase)
}

func runRounds(t *testing.T, rounds int, database func(testing.TB) string) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("APPKEYS_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("APPKEYS_CRASH_SEED=%q: %v", s, err)
		}
	}
	t.Logf("%d rounds, APPKEYS_CRASH_SEED=%d", rounds, seed)
	var total roundStats
	start := time.Now()
	for i := range rounds {
		ok := t.Run(fmt.Sprintf("round%02d", i+1), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			st := crashRound(t, rng, seed+uint64(i)*1000, database(t))
			t.Logf("%s", st)
			total.add(st)
		})
		if !ok {
			break // one failed round says enough; the rest would repeat it
		}
	}
	t.Logf("all rounds (%v): %s", time.Since(start).Round(time.Millisecond), total)
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a number of rounds", name, s)
	}
	return n
}

// outcome is what the client learned of one call.
type outcome int

const (
	notSent      outcome = iota
	unanswered           // sent, but no answer came: it may or may not have happened
	acknowledged         // 201 with the key, or 204 for a revoke
)

func (o outcome) String() string {
	return [...]string{"not sent", "unanswered", "acknowledged"}[o]
}

// keyRec is the client's record of one key: its create and, maybe, its
// revoke. The plain key lives only here, in memory.
type keyRec struct {
	name   string
	app    int
	create outcome
	revoke outcome
	id     string
	plain  string
}

type roundStats struct {
	rounds                                                  int
	createsAcked, createsUnanswered                         int
	revokesAcked, revokesUnanswered                         int
	unansweredCreatesKept, unansweredRevokesKept, apiErrors int
	killAfter                                               time.Duration
}

func (s *roundStats) add(o roundStats) {
	s.rounds++
	s.createsAcked += o.createsAcked
	s.createsUnanswered += o.createsUnanswered
	s.revokesAcked += o.revokesAcked
	s.revokesUnanswered += o.revokesUnanswered
	s.unansweredCreatesKept += o.unansweredCreatesKept
	s.unansweredRevokesKept += o.unansweredRevokesKept
	s.killAfter += o.killAfter
}

func (s roundStats) String() string {
	kill := s.killAfter
	if s.rounds > 1 {
		kill /= time.Duration(s.rounds)
	}
	return fmt.Sprintf("creates acknowledged %d (unanswered %d, of which kept %d), revokes acknowledged %d (unanswered %d, of which took effect %d), kill %v after load start",
		s.createsAcked, s.createsUnanswered, s.unansweredCreatesKept, s.revokesAcked, s.revokesUnanswered, s.unansweredRevokesKept, kill.Round(time.Millisecond))
}

// crashRound starts a service on an empty store, loads it with concurrent
// creates and revokes, kills it at a random moment, restarts it on the same
// store and checks that it kept exactly what it acknowledged.
func crashRound(t *testing.T, rng *rand.Rand, seed uint64, database string) roundStats {
	dataDir := t.TempDir()
	svc := startService(t, dataDir, database, "serve-1")
	ctx := context.Background()

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers * 2}}
	t.Cleanup(hc.CloseIdleConnections)
	owner := newClient(t, svc.URL, ownerToken, hc)
	var verifierTokens [apps]string
	var appIDs [apps]string
	for i := range apps {
		a, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: fmt.Sprintf("crash-app-%d", i), Kind: client.KindCloudFunction})
		if err != nil {
			t.Fatalf("create app: %v", err)
		}
		appIDs[i], verifierTokens[i] = a.ID, a.VerifierToken
	}

	// The load: every worker creates keys and revokes some of its own,
	// writing down what was acknowledged, until the kill.
	var (
		mu        sync.Mutex
		recs      []*keyRec
		apiErrs   []error
		killed    atomic.Bool
		acked     atomic.Int64
		calls     atomic.Int64
		wg        sync.WaitGroup
		expiresAt = time.Now().Add(24 * time.Hour)
	)
	record := func(f func()) { mu.Lock(); f(); mu.Unlock() }
	failed := func(err error) {
		var ae *client.APIError
		switch {
		case errors.As(err, &ae):
			// A whole error answer comes from a live handler, never from
			// the kill: the service refused a call it should have taken.
			record(func() { apiErrs = append(apiErrs, err) })
		case !killed.Load():
			record(func() { apiErrs = append(apiErrs, fmt.Errorf("before the kill: %w", err)) })
		}
	}
	loadStart := time.Now()
	for w := range workers {
		wg.Go(func() {
			wrng := rand.New(rand.NewPCG(seed, uint64(w)))
			var live []*keyRec
			for n := 0; !killed.Load(); n++ {
				if len(live) > 0 && wrng.Float64() < pRevoke {
					i := wrng.IntN(len(live))
					rec := live[i]
					live[i] = live[len(live)-1]
					live = live[:len(live)-1]
					record(func() { rec.revoke = unanswered })
					calls.Add(1)
					if err := owner.RevokeKey(ctx, rec.id); err != nil {
						failed(err)
						continue
					}
					record(func() { rec.revoke = acknowledged })
					continue
				}
				rec := &keyRec{name: fmt.Sprintf("crash-w%d-%d", w, n), app: wrng.IntN(apps), create: unanswered}
				record(func() { recs = append(recs, rec) })
				calls.Add(1)
				k, err := owner.CreateKey(ctx, appIDs[rec.app], client.CreateKeyRequest{Name: rec.name, ExpiresAt: expiresAt})
				if err != nil {
					failed(err)
					continue
				}
				if k.ID == "" || k.PlainKey == "" {
					record(func() {
						apiErrs = append(apiErrs, fmt.Errorf("create %s answered without id or key: %+v", rec.name, k.Key))
					})
					continue
				}
				record(func() { rec.create, rec.id, rec.plain = acknowledged, k.ID, k.PlainKey })
				acked.Add(1)
				live = append(live, rec)
			}
		})
	}
	t.Cleanup(func() { killed.Store(true); wg.Wait() }) // should a Fatal below end the round early

	deadline := time.Now().Add(readyTimeout)
	for acked.Load() < minAcked {
		if time.Now().After(deadline) {
			killed.Store(true)
			t.Fatalf("only %d creates acknowledged in %v: %v %s", acked.Load(), readyTimeout, apiErrs, svc.logTail())
		}
		time.Sleep(2 * time.Millisecond)
	}
	killAt := time.Now().Add(time.Duration(rng.Int64N(int64(maxKillDelay))))
	for time.Now().Before(killAt) && calls.Load() < maxCalls {
		time.Sleep(time.Millisecond)
	}
	killed.Store(true)
	killAfter := time.Since(loadStart)
	svc.crash()
	wg.Wait()
	hc.CloseIdleConnections()
	for _, err := range apiErrs {
		t.Errorf("load: %v", err)
	}

	st := roundStats{rounds: 1, killAfter: killAfter, apiErrors: len(apiErrs)}
	byName := make(map[string]*keyRec, len(recs))
	for _, r := range recs {
		byName[r.name] = r
		switch r.create {
		case acknowledged:
			st.createsAcked++
		case unanswered:
			st.createsUnanswered++
		}
		switch r.revoke {
		case acknowledged:
			st.revokesAcked++
		case unanswered:
			st.revokesUnanswered++
		}
	}

	// The restart, on the same store, and what it must show.
	svc = startService(t, dataDir, database, "serve-2")
	owner = newClient(t, svc.URL, ownerToken, hc)
	var verifiers [apps]*client.Client
	for i := range apps {
		verifiers[i] = newClient(t, svc.URL, verifierTokens[i], hc)
	}

	listed, err := owner.ListKeys(ctx, client.StateAny)
	if err != nil {
		t.Fatalf("list keys after restart: %v", err)
	}
	listedByID := make(map[string]client.Key, len(listed))
	for _, k := range listed {
		if _, dup := listedByID[k.ID]; dup {
			t.Errorf("key %s listed twice", k.ID)
		}
		listedByID[k.ID] = k
	}
	audit := auditTargets(t, owner)
	revokedEvents := make(map[string]bool)
	for i := range apps {
		for id := range revokedEventKeys(t, verifiers[i]) {
			revokedEvents[id] = true
		}
	}

	// Every listed key is whole, and is one the client asked for.
	for _, k := range listed {
		rec := byName[k.Name]
		switch {
		case k.Name == "" || !strings.HasPrefix(k.Prefix, "cak_") || len(k.Prefix) <= len("cak_") || !strings.HasPrefix(k.ID, "key_"):
			t.Errorf("half-made key listed: %+v", k)
			continue
		case rec == nil:
			t.Errorf("listed key %s named %q was never asked for", k.ID, k.Name)
			continue
		case k.AppID != appIDs[rec.app]:
			t.Errorf("key %s (%s) listed under app %s, created under %s", k.ID, k.Name, k.AppID, appIDs[rec.app])
		case k.State != client.StateActive:
			t.Errorf("key %s (%s) is %s after the restart, want active", k.ID, k.Name, k.State)
		}
		if !audit["key.create"][k.ID] {
			t.Errorf("listed key %s (%s) has no key.create audit record", k.ID, k.Name)
		}
		if revokedEvents[k.ID] || audit["key.revoke"][k.ID] {
			t.Errorf("listed key %s (%s) has a key.revoked event or key.revoke audit record", k.ID, k.Name)
		}
		if rec.create == unanswered {
			// Its create committed but the answer died with the process:
			// the client never had the key, so there is nothing to verify.
			st.unansweredCreatesKept++
			continue
		}
		if k.ID != rec.id || !strings.HasPrefix(rec.plain, k.Prefix) {
			t.Errorf("key %q listed as %s prefix %s, created as %s", k.Name, k.ID, k.Prefix, rec.id)
		}
	}

	// Every acknowledged create verifies: VALID, or REVOKED when its revoke
	// was acknowledged; a revoke without an answer may have gone either way,
	// but the list, the events feed and the audit log must all agree with
	// the verdict.
	for _, rec := range recs {
		if rec.create != acknowledged {
			continue
		}
		v := verify(t, verifiers[rec.app], rec.plain)
		if v.Code != client.VerifyValid && v.Code != client.VerifyRevoked {
			t.Errorf("acknowledged key %s (%s, revoke %v) verifies %s after the restart", rec.id, rec.name, rec.revoke, v.Code)
			continue
		}
		if v.KeyID != rec.id || v.AppID != appIDs[rec.app] {
			t.Errorf("key %s verifies as key %q of app %q", rec.id, v.KeyID, v.AppID)
		}
		revoked := v.Code == client.VerifyRevoked
		switch {
		case rec.revoke == acknowledged && !revoked:
			t.Errorf("key %s (%s): its revoke was acknowledged, but it verifies %s after the restart", rec.id, rec.name, v.Code)
		case rec.revoke == notSent && revoked:
			t.Errorf("key %s (%s) was never revoked, but verifies %s", rec.id, rec.name, v.Code)
		case rec.revoke == unanswered && revoked:
			st.unansweredRevokesKept++
		}
		if _, ok := listedByID[rec.id]; ok == revoked {
			t.Errorf("key %s (%s) verifies %s but listed=%v", rec.id, rec.name, v.Code, ok)
		}
		if revokedEvents[rec.id] != revoked {
			t.Errorf("key %s (%s) verifies %s but key.revoked event=%v", rec.id, rec.name, v.Code, revokedEvents[rec.id])
		}
		if audit["key.revoke"][rec.id] != revoked {
			t.Errorf("key %s (%s) verifies %s but key.revoke audit record=%v", rec.id, rec.name, v.Code, audit["key.revoke"][rec.id])
		}
		if !audit["key.create"][rec.id] {
			t.Errorf("acknowledged key %s (%s) has no key.create audit record", rec.id, rec.name)
		}
	}

	// The restarted service still writes: a new key is born and verifies.
	k, err := owner.CreateKey(ctx, appIDs[0], client.CreateKeyRequest{Name: "after-restart", ExpiresAt: expiresAt})
	if err != nil {
		t.Fatalf("create a key after the restart: %v", err)
	}
	if v := verify(t, verifiers[0], k.PlainKey); v.Code != client.VerifyValid {
		t.Errorf("a key made after the restart verifies %s", v.Code)
	}

	svc.stop()
	hc.CloseIdleConnections()
	if database == "" {
		checkSQLiteIntegrity(t, filepath.Join(dataDir, "appkeys.db"))
	}
	return st
}

func newClient(t *testing.T, url, token string, hc *http.Client) *client.Client {
	t.Helper()
	c, err := client.New(url, token, client.WithHTTPClient(hc), client.WithTimeout(callTimeout))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// verify asks for a verdict, waiting out the service's throttle of failed
// verifies should a round ever reach it.
func verify(t *testing.T, c *client.Client, key string) *client.VerifyResult {
	t.Helper()
	for try := 0; ; try++ {
		v, err := c.Verify(context.Background(), key)
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests && try < 10 {
			time.Sleep(min(max(ae.RetryAfter, 100*time.Millisecond), 2*time.Second))
			continue
		}
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		return v
	}
}

// auditTargets maps audit actions to the ids they name.
func auditTargets(t *testing.T, owner *client.Client) map[string]map[string]bool {
	t.Helper()
	const limit = 1000
	recs, err := owner.ListAudit(context.Background(), limit)
	if err != nil {
		t.Fatalf("audit after restart: %v", err)
	}
	if len(recs) >= limit {
		t.Fatalf("the round wrote %d or more audit records, more than one page shows: lower maxKillDelay", limit)
	}
	out := map[string]map[string]bool{"key.create": {}, "key.revoke": {}}
	for _, r := range recs {
		if out[r.Action] != nil {
			if out[r.Action][r.Target] {
				t.Errorf("two %s audit records for %s", r.Action, r.Target)
			}
			out[r.Action][r.Target] = true
		}
	}
	return out
}

// revokedEventKeys reads an app's whole events feed and returns the keys it
// says were revoked.
func revokedEventKeys(t *testing.T, verifier *client.Client) map[string]bool {
	t.Helper()
	out := make(map[string]bool)
	var after int64
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("the events feed does not end")
		}
		p, err := verifier.Events(context.Background(), after, 0)
		if err != nil {
			t.Fatalf("events after restart: %v", err)
		}
		if len(p.Events) == 0 {
			return out
		}
		for _, e := range p.Events {
			if e.Type == client.EventKeyRevoked {
				if out[e.KeyID] {
					t.Errorf("two key.revoked events for %s", e.KeyID)
				}
				out[e.KeyID] = true
			}
		}
		after = p.Next
	}
}

// checkSQLiteIntegrity runs SQLite's own checks on the database the service
// left behind (after its clean stop).
func checkSQLiteIntegrity(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if res != "ok" {
		t.Errorf("integrity_check: %s", res)
	}
	rows, err := db.Query("PRAGMA foreign_key_check")
	if err != nil {
		t.Fatalf("foreign_key_check: %v", err)
	}
	defer rows.Close()
	if rows.Next() {
		t.Errorf("foreign_key_check found violations")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
