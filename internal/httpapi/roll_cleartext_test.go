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

// Attack: a roll leaks a key, old or new: into the logs (at debug level),
// the audit log (whose secret.update and key.roll records name the keys
// and secrets involved) or the database files.
func TestRollKeysNotInClear(t *testing.T) {
	logs := &servicetest.LogBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := newWorld(t, servicetest.WithLogger(logger))

	saved, err := w.member.CreateKey(ctx(t), w.appA.ID, client.CreateKeyRequest{Name: "saved", ExpiresAt: w.clock.Now().Add(time.Hour), SaveAsSecret: "SAVED"})
	must(t, err)
	old := w.createKey(w.owner, w.appA.ID, "plain")
	keys := []string{old.PlainKey}
	for _, s := range []string{"SAVED"} {
		v, err := w.owner.GetSecret(ctx(t), s)
		must(t, err)
		keys = append(keys, v.Value)
	}
	a := w.roll(w.ownerTok, old.ID, w.rollBody(time.Hour, "1m"))
	keys = append(keys, a.Key)
	body := w.rollBody(time.Hour, "0s")
	body["save_as_secret"] = "SAVED_TOO"
	w.roll(w.memTok, saved.ID, body)
	// A refused roll into a secret set by hand, and a roll of a rolled key.
	_, err = w.owner.CreateSecret(ctx(t), client.CreateSecretRequest{Name: "HAND", Value: "not a key"})
	must(t, err)
	body = w.rollBody(time.Hour, "1m")
	body["save_as_secret"] = "HAND"
	w.do("POST", "/v1/keys/"+a.ID+"/roll", w.ownerTok, body).WantError(http.StatusConflict, "")
	w.do("POST", "/v1/keys/"+old.ID+"/roll", w.ownerTok, w.rollBody(time.Hour, "1m")).WantError(http.StatusConflict, "")
	for _, s := range []string{"SAVED", "SAVED_TOO"} {
		v, err := w.owner.GetSecret(ctx(t), s)
		must(t, err)
		keys = append(keys, v.Value)
	}
	for _, k := range keys {
		w.verify(w.verA, k)
	}
	audit := w.do("GET", "/v1/audit?limit=1000", w.ownerTok, nil).WantStatus(http.StatusOK)
	if !bytes.Contains(audit.Body, []byte(`"key.roll"`)) || !bytes.Contains(audit.Body, []byte(`"secret.update"`)) {
		t.Fatalf("the audit log lacks the roll: %s", audit.Body)
	}

	w.svc.Stop()
	logText := logs.String()
	var disk []byte
	for _, name := range []string{"appkeys.db", "appkeys.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(w.svc.DataDir, name))
		disk = append(disk, b...)
	}
	if os.Getenv(servicetest.EnvStore) != "postgres" && !bytes.Contains(disk, []byte(a.ID)) {
		t.Fatalf("read no database from %s", w.svc.DataDir)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "cak_") {
			t.Fatalf("not a key: %.8s…", k)
		}
		for _, probe := range []string{k, k[4:]} {
			if strings.Contains(logText, probe) {
				t.Errorf("the log contains a key %.8s…", k)
			}
			if bytes.Contains(disk, []byte(probe)) {
				t.Errorf("the database files contain a key %.8s…", k)
			}
			if bytes.Contains(audit.Body, []byte(probe)) {
				t.Errorf("the audit log contains a key %.8s…", k)
			}
		}
	}
}
