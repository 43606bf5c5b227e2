package configs

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/appkeys/appkeys/internal/keyservice"
)

// The alert on keys about to expire watches the window the key service
// counts (TestQueriesNameExportedMetrics checks the series and its within
// value are exported), waits an hour so one short-lived test key does not
// page anyone, and tells the operator the command that lists the keys.
func TestKeysExpiringSoonAlert(t *testing.T) {
	groups, errs := rulefmt.ParseFile("alerts.yml", false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("Prometheus' rule parser refuses alerts.yml: %v", errs)
	}
	var rule *rulefmt.Rule
	for _, g := range groups.Groups {
		for i, r := range g.Rules {
			if r.Alert == "AppkeysKeysExpiringSoon" {
				rule = &g.Rules[i]
			}
		}
	}
	if rule == nil {
		t.Fatal("alerts.yml has no AppkeysKeysExpiringSoon alert")
	}
	if time.Duration(rule.For) < time.Hour {
		t.Errorf("AppkeysKeysExpiringSoon: for %v, want at least 1h", rule.For)
	}
	sels, _, err := selectors(rule.Expr)
	if err != nil {
		t.Fatal(err)
	}
	watched := false
	for _, s := range sels {
		for _, m := range s.matchers {
			if s.name == "appkeys_keys_expiring" && m.Name == "within" && m.Type == labels.MatchEqual && m.Value == keyservice.ExpiringSoonLabel {
				watched = true
			}
		}
	}
	if !watched {
		t.Errorf("AppkeysKeysExpiringSoon: %q does not select appkeys_keys_expiring{within=%q}", rule.Expr, keyservice.ExpiringSoonLabel)
	}
	// Replicas each count the whole table: a sum would multiply the count.
	if strings.Contains(rule.Expr, "sum") {
		t.Errorf("AppkeysKeysExpiringSoon sums the replicas' counts: %q", rule.Expr)
	}
	for _, a := range []string{"description", "runbook"} {
		if !strings.Contains(rule.Annotations[a], "appkeys keys list --expiring-within 7d") {
			t.Errorf("AppkeysKeysExpiringSoon: annotations.%s does not say how to list the keys: %q", a, rule.Annotations[a])
		}
	}
}
