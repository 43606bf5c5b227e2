package httpapi_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// No key, secret value or token is ever written in clear: not to the logs
// (at debug level), not to the SQLite files, not to the audit log.
func TestNoSecretsInClear(t *testing.T) {
	logs := &servicetest.LogBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := newWorld(t, servicetest.WithLogger(logger))

	secrets := []string{w.svc.AdminToken, w.ownerTok, w.auraTok, w.memTok, w.appA.VerifierToken, w.appB.VerifierToken}
	admin := w.client(w.svc.AdminToken)
	org2, err := admin.CreateOrg(ctx(t), client.CreateOrgRequest{Name: "Two", OwnerEmail: "two@example.com"})
	must(t, err)
	secrets = append(secrets, org2.Owner.Token)

	var keys []*client.CreatedKey
	for _, by := range []*client.Client{w.owner, w.aura, w.member} {
		k := w.createKey(by, w.appA.ID, "k"+by.BaseURL()[len(by.BaseURL())-3:]+time.Now().Format("150405.000000000"))
		keys = append(keys, k)
		secrets = append(secrets, k.PlainKey)
	}
	kb := w.createKey(w.owner, w.appB.ID, "b")
	secrets = append(secrets, kb.PlainKey)
	saved, err := w.member.CreateKey(ctx(t), w.appA.ID, client.CreateKeyRequest{Name: "saved", ExpiresAt: w.clock.Now().Add(time.Hour), SaveAsSecret: "SAVED_KEY"})
	must(t, err)
	const secretValue = "s3cr3t-Value-that-must-never-leak-9f8e7d"
	_, err = w.owner.CreateSecret(ctx(t), client.CreateSecretRequest{Name: "DB_PASSWORD", Value: secretValue})
	must(t, err)
	secrets = append(secrets, secretValue)
	savedVal, err := w.aura.GetSecret(ctx(t), "SAVED_KEY")
	must(t, err)
	secrets = append(secrets, savedVal.Value)
	if v, err := w.member.GetSecret(ctx(t), "DB_PASSWORD"); err != nil || v.Value != secretValue {
		t.Fatalf("read secret: %+v %v", v, err)
	}
	newUser := w.createUser(w.owner, "new@example.com", client.RoleMember)
	secrets = append(secrets, newUser.Token)
	// Rotated verifier tokens and users' own tokens, used, listed and
	// retired.
	rolled := w.mintVerifier(w.memTok, w.appB.ID, "1h")["token"].(string)
	secrets = append(secrets, rolled)
	w.verify(w.client(rolled), kb.PlainKey)
	w.verifierTokens(w.ownerTok, w.appB.ID)
	own := w.createToken(w.auraTok, map[string]any{"name": "ci", "expires_at": w.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	secrets = append(secrets, own["token"].(string))
	w.do("GET", "/v1/me/tokens", own["token"].(string), nil).WantStatus(http.StatusOK)
	w.do("DELETE", "/v1/me/tokens/"+own["id"].(string), w.auraTok, nil).WantStatus(http.StatusNoContent)
	w.do("GET", "/v1/me", own["token"].(string), nil).WantError(http.StatusUnauthorized, "")
	w.do("DELETE", "/v1/me/tokens/"+rolled, w.auraTok, nil).WantError(http.StatusNotFound, "") // a token pasted where an id goes

	// Use them: every verdict, the feed, failures, and keys and tokens sent
	// where they do not belong.
	for _, k := range keys {
		w.verify(w.verA, k.PlainKey)
		w.verify(w.verB, k.PlainKey)
	}
	w.verify(w.verA, savedVal.Value)
	must(t, w.owner.RevokeKey(ctx(t), keys[0].ID))
	w.verify(w.verA, keys[0].PlainKey)
	must(t, w.owner.DeleteUser(ctx(t), w.memberID))
	w.verify(w.verA, keys[2].PlainKey)
	w.do("POST", "/v1/verify", w.appA.VerifierToken, `{"key": "`+kb.PlainKey+`", "extra": 1}`).WantError(http.StatusBadRequest, "")
	w.do("POST", "/v1/verify", w.appA.VerifierToken, `{"key": "`+kb.PlainKey+`"`).WantError(http.StatusBadRequest, "")
	w.do("POST", "/v1/verify", w.appA.VerifierToken, map[string]string{"key": kb.PlainKey}, "Content-Type", "text/plain").WantError(http.StatusUnsupportedMediaType, "")
	w.do("POST", "/v1/verify", w.ownerTok, map[string]string{"key": kb.PlainKey}).WantError(http.StatusForbidden, "")
	w.do("POST", "/v1/secrets", w.ownerTok, map[string]any{"name": "DB_PASSWORD", "value": secretValue}).WantError(http.StatusConflict, "")
	w.do("POST", "/v1/secrets", w.ownerTok, map[string]any{"name": "bad name!", "value": secretValue}).WantError(http.StatusUnprocessableEntity, "")
	w.do("POST", "/v1/secrets", w.ownerTok, map[string]any{"name": "X", "value": secretValue, "oops": true}).WantError(http.StatusBadRequest, "")
	w.do("GET", "/v1/me", w.memTok, nil).WantError(http.StatusUnauthorized, "")                 // a deleted user's token
	w.do("GET", "/v1/me", w.appA.VerifierToken+"x", nil).WantError(http.StatusUnauthorized, "") // a near miss
	// A key pasted where an id goes, or into a query string.
	w.do("DELETE", "/v1/keys/"+kb.PlainKey, w.ownerTok, nil).WantError(http.StatusNotFound, "")
	w.do("GET", "/v1/keys?state="+kb.PlainKey, w.ownerTok, nil).WantError(http.StatusUnprocessableEntity, "")
	w.do("GET", "/v1/events?after="+w.ownerTok, w.appA.VerifierToken, nil).WantError(http.StatusBadRequest, "")
	page, err := w.verA.Events(ctx(t), 0, 0)
	must(t, err)
	if len(page.Events) == 0 {
		t.Fatal("no events for app A")
	}
	must(t, w.owner.DeleteApp(ctx(t), w.appA.ID))
	if v, err := w.verA.Verify(ctx(t), keys[1].PlainKey); err != nil || v.Code != "ORPHANED" {
		t.Fatalf("verify after the app's deletion = %+v, %v; want ORPHANED", v, err)
	}
	_, err = w.owner.Metrics(ctx(t))
	must(t, err)

	audit := w.do("GET", "/v1/audit?limit=1000", w.ownerTok, nil).WantStatus(http.StatusOK)
	var a struct{ Audit []map[string]any }
	audit.Into(&a)
	if len(a.Audit) < 10 {
		t.Fatalf("the audit log has only %d records: %s", len(a.Audit), audit.Body)
	}
	for _, want := range []string{"secret.read", "secret.create", "key.create", "key.revoke", "key.orphan", "user.delete", "app.delete", "verifier_token.mint", "token.create", "token.revoke"} {
		if !bytes.Contains(audit.Body, []byte(`"`+want+`"`)) {
			t.Errorf("the audit log has no %s record", want)
		}
	}

	// Stop the service so that everything is flushed (last-used times, the
	// WAL) and read what it left on disk.
	logText := logs.String()
	if !strings.Contains(logText, `"request"`) || !strings.Contains(logText, "/v1/verify") {
		t.Fatalf("the logger caught no request logs: %.500s", logText)
	}
	w.svc.Stop()
	logText = logs.String()
	var files []string
	var disk []byte
	for _, name := range []string{"appkeys.db", "appkeys.db-wal", "appkeys.db-shm"} {
		b, err := os.ReadFile(filepath.Join(w.svc.DataDir, name))
		if err == nil {
			files = append(files, name)
			disk = append(disk, b...)
		}
	}
	if os.Getenv(servicetest.EnvStore) == "postgres" {
		// The rows live in the PostgreSQL cluster; what the store reads
		// back is checked by the audit and list assertions below, and the
		// SQLite run checks the bytes on disk.
	} else if len(files) == 0 || !bytes.Contains(disk, []byte(keys[1].ID)) {
		t.Fatalf("read no database from %s (%v)", w.svc.DataDir, files)
	}

	for _, s := range secrets {
		for _, probe := range []string{s, s[4:]} { // also without its prefix
			if strings.Contains(logText, probe) {
				t.Errorf("the log contains a secret %.8s…", s)
			}
			if bytes.Contains(disk, []byte(probe)) {
				t.Errorf("the database files (%v) contain a secret %.8s…", files, s)
			}
			if bytes.Contains(audit.Body, []byte(probe)) {
				t.Errorf("the audit log contains a secret %.8s…", s)
			}
		}
	}
	_ = saved
}
