package configs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	_ "github.com/appkeys/appkeys/caddymodule"
	"github.com/appkeys/appkeys/e2e"
	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/httpapi"
	"github.com/appkeys/appkeys/internal/keyservice"
	"github.com/appkeys/appkeys/internal/servicetest"
)

// adminPort is this package's own Caddy admin port: test packages run as
// concurrent processes and must not share one.
const adminPort = 2951

// synthetic series are made by Prometheus itself, not by a scraped program.
var synthetic = map[string]bool{
	"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true,
	"scrape_samples_post_metric_relabeling": true, "scrape_series_added": true,
	"ALERTS": true, "ALERTS_FOR_STATE": true,
}

// targetLabels are attached by Prometheus at scrape time (prometheus.yml),
// not by the programs.
var targetLabels = map[string]bool{"job": true, "instance": true, "namespace": true, "pod": true}

// httpStatusLabels hold an HTTP status code, whose values appear only once
// such an answer was given: an alert on code="503" is right before any 503.
var httpStatusLabels = map[string]string{
	"appkeys_http_requests_total":           "code",
	"appkey_auth_keyservice_requests_total": "code",
}

// exported is what the programs expose: series name → label → values seen.
type exported map[string]map[string]map[string]bool

func (e exported) addFamilies(fams map[string]*dto.MetricFamily) {
	for _, f := range fams {
		for _, m := range f.Metric {
			lbls := map[string]string{}
			for _, lp := range m.Label {
				lbls[lp.GetName()] = lp.GetValue()
			}
			switch {
			case m.Histogram != nil:
				e.add(f.GetName()+"_bucket", lbls, "le")
				e.add(f.GetName()+"_sum", lbls)
				e.add(f.GetName()+"_count", lbls)
			case m.Summary != nil:
				e.add(f.GetName(), lbls, "quantile")
				e.add(f.GetName()+"_sum", lbls)
				e.add(f.GetName()+"_count", lbls)
			default:
				e.add(f.GetName(), lbls)
			}
		}
	}
}

func (e exported) add(name string, lbls map[string]string, extra ...string) {
	if e[name] == nil {
		e[name] = map[string]map[string]bool{}
	}
	for k, v := range lbls {
		if e[name][k] == nil {
			e[name][k] = map[string]bool{}
		}
		e[name][k][v] = true
	}
	for _, k := range extra {
		if e[name][k] == nil {
			e[name][k] = map[string]bool{}
		}
	}
}

// scrape reads a Prometheus text endpoint into e and returns the families'
// names it found.
func (e exported) scrape(t *testing.T, url string) []string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	e.addFamilies(fams)
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// runPrograms starts the real key service and a real Caddy with appkey_auth
// in front of an upstream, makes the requests that bring the labelled
// families into being (allowed, denied, a key of another app, a revocation
// through the feed, an orphaned key), and scrapes the key service's /metrics,
// Caddy's admin /metrics and a `metrics` handler site.
func runPrograms(t *testing.T) exported {
	ctx := context.Background()
	ks := servicetest.Start(t)
	owner, err := client.New(ks.URL, ks.OwnerToken)
	if err != nil {
		t.Fatal(err)
	}
	app, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: "metrics", Kind: "cloud_function"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: "other", Kind: "dashboard_app"})
	if err != nil {
		t.Fatal(err)
	}
	newKey := func(appID, name string) *client.CreatedKey {
		k, err := owner.CreateKey(ctx, appID, client.CreateKeyRequest{Name: name, ExpiresAt: time.Now().Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	valid, revoked, wrongApp := newKey(app.ID, "valid"), newKey(app.ID, "revoked"), newKey(other.ID, "other")
	gone, err := owner.CreateApp(ctx, client.CreateAppRequest{Name: "gone", Kind: "cloud_function"})
	if err != nil {
		t.Fatal(err)
	}
	newKey(gone.ID, "orphan")
	if err := owner.DeleteApp(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(upstream.Close)
	port, metricsPort := e2e.TestPort(t), e2e.TestPort(t)
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
	tester.InitServer(e2e.GlobalOptions(fmt.Sprintf("localhost:%d", adminPort))+fmt.Sprintf(`
http://127.0.0.1:%d {
	appkey_auth {
		key_service %s
		app %s
		verifier_token %s
	}
	reverse_proxy %s
}
http://127.0.0.1:%d {
	metrics /metrics
}`, port, ks.URL, app.ID, app.VerifierToken, strings.TrimPrefix(upstream.URL, "http://"), metricsPort), "caddyfile")
	t.Cleanup(func() { tester.InitServer(fmt.Sprintf("{\n\tadmin localhost:%d\n}\n", adminPort), "caddyfile") })

	do := func(key string, want int) {
		t.Helper()
		resp, err := e2e.Get(tester.Client, port, key)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Fatalf("request with key %.8q…: %d, want %d", key, resp.StatusCode, want)
		}
	}
	do("", 401)
	do(valid.PlainKey, 200)
	do(valid.PlainKey, 200) // a cache hit
	do(revoked.PlainKey, 200)
	do(wrongApp.PlainKey, 401)
	do("cak_malformed", 401)
	if err := owner.RevokeKey(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	// The feed applies the revocation to the cache: the revoked key stops
	// working while cache_ttl is still minutes away.
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
		req.Header.Set("X-API-Key", revoked.PlainKey)
		resp, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked key still answers %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(ks.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	e := exported{}
	ksNames := e.scrape(t, ks.URL+"/metrics")
	adminNames := e.scrape(t, fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	handlerNames := e.scrape(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	// The admin endpoint and the metrics handler serve one registry: the
	// docs send Prometheus to the handler rather than expose the admin API.
	for _, n := range adminNames {
		if strings.HasPrefix(n, "appkey_auth_") && !slices.Contains(handlerNames, n) {
			t.Errorf("%s is on Caddy's admin /metrics but not on the metrics handler", n)
		}
	}
	if !slices.ContainsFunc(ksNames, func(n string) bool { return strings.HasPrefix(n, "appkeys_") }) ||
		!slices.ContainsFunc(adminNames, func(n string) bool { return strings.HasPrefix(n, "appkey_auth_") }) {
		t.Fatalf("scrapes lack the programs' own families:\nkey service: %v\ncaddy: %v", ksNames, adminNames)
	}
	return e
}

// selector is one vector selector of a PromQL expression.
type selector struct {
	name     string
	matchers []*labels.Matcher
}

// grouping is an aggregation's `by (...)` labels and the metric names under
// it: each label must be on each of those metrics.
type grouping struct {
	labels []string
	names  []string
}

var promql = parser.NewParser(parser.Options{})

func selectorOf(vs *parser.VectorSelector) selector {
	s := selector{name: vs.Name}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName {
			if s.name == "" && m.Type == labels.MatchEqual {
				s.name = m.Value
			}
			continue
		}
		s.matchers = append(s.matchers, m)
	}
	return s
}

// selectors parses expr with Prometheus' parser and returns its selectors
// and the groupings of its aggregations.
func selectors(expr string) ([]selector, []grouping, error) {
	node, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, nil, err
	}
	var sels []selector
	var groups []grouping
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			sels = append(sels, selectorOf(n))
		case *parser.AggregateExpr:
			if n.Without || len(n.Grouping) == 0 {
				return nil
			}
			g := grouping{labels: n.Grouping}
			parser.Inspect(n.Expr, func(m parser.Node, _ []parser.Node) error {
				if vs, ok := m.(*parser.VectorSelector); ok {
					g.names = append(g.names, selectorOf(vs).name)
				}
				return nil
			})
			groups = append(groups, g)
		}
		return nil
	})
	return sels, groups, nil
}

// checker compares the selectors of one file's queries with what the
// programs export.
type checker struct {
	exp      exported
	jobs     map[string]bool // job_name values of prometheus.yml
	routes   map[string]bool // the key service's route labels
	recorded map[string]bool // names made by recording rules
}

func (c *checker) check(where, expr string) []error {
	sels, groups, err := selectors(expr)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", where, err)}
	}
	if len(sels) == 0 {
		return []error{fmt.Errorf("%s: the query names no metric", where)}
	}
	var errs []error
	for _, s := range sels {
		switch {
		case s.name == "":
			errs = append(errs, fmt.Errorf("%s: a selector without a metric name", where))
			continue
		case synthetic[s.name] || c.recorded[s.name]:
		case c.exp[s.name] == nil:
			errs = append(errs, fmt.Errorf("%s: %s is not exported by the key service or the sidecar", where, s.name))
			continue
		}
		for _, m := range s.matchers {
			if err := c.checkMatcher(s.name, m); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
	}
	for _, g := range groups {
		for _, l := range g.labels {
			for _, name := range g.names {
				if targetLabels[l] || synthetic[name] || c.recorded[name] || c.exp[name] == nil {
					continue // a missing name is reported above
				}
				if _, ok := c.exp[name][l]; !ok {
					errs = append(errs, fmt.Errorf("%s: aggregates by %q, a label %s does not have", where, l, name))
				}
			}
		}
	}
	return errs
}

func (c *checker) checkMatcher(name string, m *labels.Matcher) error {
	switch {
	case m.Name == "job":
		if m.Type == labels.MatchEqual && !c.jobs[m.Value] {
			return fmt.Errorf("%s{job=%q}: prometheus.yml has no such job", name, m.Value)
		}
		return nil
	case targetLabels[m.Name] || synthetic[name] || c.recorded[name]:
		return nil
	}
	values, ok := c.exp[name][m.Name]
	if !ok {
		return fmt.Errorf("%s has no label %q", name, m.Name)
	}
	if m.Type != labels.MatchEqual {
		return nil
	}
	switch {
	case m.Name == "route":
		if !c.routes[m.Value] {
			return fmt.Errorf("%s{route=%q}: the key service has no such route", name, m.Value)
		}
	case httpStatusLabels[name] == m.Name:
		if !regexp.MustCompile(`^([1-5][0-9][0-9]|error)$`).MatchString(m.Value) {
			return fmt.Errorf("%s{%s=%q}: not an HTTP status code", name, m.Name, m.Value)
		}
	case !values[m.Value]:
		return fmt.Errorf("%s{%s=%q}: no such value; the programs export %v", name, m.Name, m.Value, slices.Sorted(maps.Keys(values)))
	}
	return nil
}

// prometheusJobs reads the job names and rule files of prometheus.yml. (Its
// Kubernetes job makes the job label from app.kubernetes.io/component,
// whose values TestK8sManifests checks against these names.)
func prometheusJobs(t *testing.T) (jobs map[string]bool, ruleFiles []string) {
	t.Helper()
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	jobs = map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName == "" || jobs[sc.JobName] {
			t.Errorf("prometheus.yml: empty or repeated job_name %q", sc.JobName)
		}
		jobs[sc.JobName] = true
	}
	return jobs, cfg.RuleFiles
}

func TestQueriesNameExportedMetrics(t *testing.T) {
	jobs, ruleFiles := prometheusJobs(t)
	if !slices.Contains(ruleFiles, "alerts.yml") {
		t.Errorf("prometheus.yml does not load alerts.yml: rule_files = %v", ruleFiles)
	}
	for _, want := range []string{"appkeys-keyservice", "appkeys-sidecar"} {
		if !jobs[want] {
			t.Errorf("prometheus.yml lacks the job %s", want)
		}
	}
	routes := map[string]bool{}
	for _, r := range httpapi.Routes() {
		routes[r] = true
	}

	groups, errs := rulefmt.ParseFile("alerts.yml", false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("Prometheus' rule parser refuses alerts.yml: %v", errors.Join(errs...))
	}
	exprs := dashboardQueries(t)

	c := &checker{exp: runPrograms(t), jobs: jobs, routes: routes, recorded: map[string]bool{}}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				c.recorded[r.Record] = true
			}
		}
	}

	t.Run("alerts.yml", func(t *testing.T) {
		n := 0
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				n++
				if strings.TrimSpace(r.Annotations["runbook"]) == "" || strings.Contains(r.Annotations["runbook"], "\n") {
					t.Errorf("alert %s: annotations.runbook must be one line", r.Alert)
				}
				if r.Labels["severity"] == "" {
					t.Errorf("alert %s: no severity label", r.Alert)
				}
				for _, a := range []string{"summary", "description"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						t.Errorf("alert %s: no annotations.%s", r.Alert, a)
					}
				}
				for _, err := range c.check("alert "+r.Alert, r.Expr) {
					t.Error(err)
				}
			}
		}
		if n == 0 {
			t.Fatal("alerts.yml has no alerts")
		}
	})
	t.Run("grafana/appkeys.json", func(t *testing.T) {
		if len(exprs) == 0 {
			t.Fatal("the dashboard has no queries")
		}
		for _, q := range exprs {
			for _, err := range c.check(q.where, q.expr) {
				t.Error(err)
			}
		}
	})
}

type query struct{ where, expr string }

// grafanaVars stands in for Grafana's variables so a query parses as
// Prometheus will see it.
var grafanaVars = regexp.MustCompile(`\$\{?(\w+)(?::\w+)?\}?`)

func expandGrafana(s string) string {
	return grafanaVars.ReplaceAllStringFunc(s, func(v string) string {
		if strings.HasPrefix(strings.Trim(v, "${}"), "__") {
			return "5m" // $__rate_interval, $__interval, $__range
		}
		return ".*" // a multi-value variable, used as app=~"$app"
	})
}

var labelValues = regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)$`)

// dashboardQueries reads every panel target and query variable of the
// dashboard.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile("grafana/appkeys.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string            `json:"uid"`
		Title      string            `json:"title"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/appkeys.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("grafana/appkeys.json: want a uid, a title and panels")
	}
	type panel struct {
		Title   string            `json:"title"`
		Type    string            `json:"type"`
		Panels  []json.RawMessage `json:"panels"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	var out []query
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			walk(p.Panels) // a collapsed row holds its panels
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for i, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q target %d: empty expr", p.Title, i)
					continue
				}
				out = append(out, query{fmt.Sprintf("panel %q", p.Title), expandGrafana(tg.Expr)})
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		where := fmt.Sprintf("variable %s", v.Name)
		if m := labelValues.FindStringSubmatch(strings.TrimSpace(q)); m != nil {
			// label_values(metric, label) is Grafana's: check it as a
			// selector that must carry the label.
			out = append(out, query{where, fmt.Sprintf(`%s{%s=~".+"}`, expandGrafana(m[1]), m[2])})
			continue
		}
		out = append(out, query{where, expandGrafana(q)})
	}
	return out
}

// TestYAMLParses parses every YAML and JSON file under configs/, every
// document of a multi-document file, refusing duplicate keys; Kubernetes
// manifests must name their apiVersion, kind and metadata.name.
func TestYAMLParses(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch filepath.Ext(path) {
		case ".json":
			n++
			if !json.Valid(b) {
				t.Errorf("%s: invalid JSON", path)
			}
		case ".yml", ".yaml":
			n++
			dec := yaml.NewDecoder(bytes.NewReader(b))
			for i := 0; ; i++ {
				var doc yaml.Node
				err := dec.Decode(&doc)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Errorf("%s: document %d: %v", path, i, err)
					break
				}
				var m map[string]any
				if err := doc.Decode(&m); err != nil {
					t.Errorf("%s: document %d: %v", path, i, err)
					continue
				}
				if strings.HasPrefix(path, "k8s"+string(filepath.Separator)) && filepath.Base(path) != "kustomization.yaml" {
					checkManifest(t, fmt.Sprintf("%s: document %d", path, i), m)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 4 {
		t.Fatalf("found %d config files; the walk is broken", n)
	}
}

func checkManifest(t *testing.T, where string, m map[string]any) {
	t.Helper()
	md, _ := m["metadata"].(map[string]any)
	if m["apiVersion"] == nil || m["kind"] == nil || md == nil || md["name"] == nil {
		t.Errorf("%s: want apiVersion, kind and metadata.name", where)
	}
}

// k8sObjects reads every manifest under k8s/.
func k8sObjects(t *testing.T) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob("k8s/*.yaml")
	var out []map[string]any
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var m map[string]any
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if m != nil {
				out = append(out, m)
			}
		}
	}
	return out
}

// TestCaddyfilesAdapt adapts the sidecar Caddyfiles we hand out, the
// ConfigMap of configs/k8s and those in docs/*.md, with the real module.
func TestCaddyfilesAdapt(t *testing.T) {
	t.Setenv("APPKEYS_APP_ID", "app_example")
	t.Setenv("APPKEYS_KEY_SERVICE", "http://appkeys-keyservice:8700")
	var files []query
	for _, obj := range k8sObjects(t) {
		if obj["kind"] != "ConfigMap" {
			continue
		}
		data, _ := obj["data"].(map[string]any)
		for k, v := range data {
			if s, ok := v.(string); ok && k == "Caddyfile" {
				files = append(files, query{"configs/k8s ConfigMap " + obj["metadata"].(map[string]any)["name"].(string), s})
			}
		}
	}
	docs, _ := filepath.Glob("../docs/*.md")
	fence := regexp.MustCompile("(?s)```caddyfile\n(.*?)```")
	for _, d := range docs {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range fence.FindAllStringSubmatch(string(b), -1) {
			files = append(files, query{fmt.Sprintf("%s block %d", d, i+1), m[1]})
		}
	}
	if len(files) < 2 {
		t.Fatalf("found %d Caddyfiles in configs/k8s and docs/", len(files))
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, f := range files {
		out, _, err := adapter.Adapt([]byte(f.expr), map[string]any{"filename": f.where})
		if err != nil {
			t.Errorf("%s: %v", f.where, err)
			continue
		}
		if strings.Contains(f.expr, "appkey_auth") && !bytes.Contains(out, []byte(`"handler":"appkey_auth"`)) {
			t.Errorf("%s: appkey_auth is not in the adapted config", f.where)
		}
	}
}

// TestK8sManifests checks what the Deployments promise: probes on the key
// service's /readyz and /healthz, Prometheus annotations that match
// prometheus.yml's relabeling, the master key from a Secret, and a sidecar
// whose Caddyfile comes from a ConfigMap.
func TestK8sManifests(t *testing.T) {
	objs := k8sObjects(t)
	byKind := map[string][]map[string]any{}
	for _, o := range objs {
		byKind[o["kind"].(string)] = append(byKind[o["kind"].(string)], o)
	}
	for _, kind := range []string{"Deployment", "Service", "Secret", "ConfigMap"} {
		if len(byKind[kind]) == 0 {
			t.Errorf("configs/k8s has no %s", kind)
		}
	}
	var components []string
	for _, d := range byKind["Deployment"] {
		name := get(d, "metadata", "name")
		tmpl := get(d, "spec", "template", "metadata")
		ann, _ := tmpl.(map[string]any)["annotations"].(map[string]any)
		lbls, _ := tmpl.(map[string]any)["labels"].(map[string]any)
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] == nil || ann["prometheus.io/path"] == nil {
			t.Errorf("Deployment %v: pod template lacks prometheus.io/scrape, port and path annotations", name)
		}
		comp, _ := lbls["app.kubernetes.io/component"].(string)
		components = append(components, comp)
		containers, _ := get(d, "spec", "template", "spec", "containers").([]any)
		var env []string
		var probes []string
		for _, c := range containers {
			cm := c.(map[string]any)
			for _, e := range asList(cm["env"]) {
				env = append(env, fmt.Sprint(e.(map[string]any)["name"]))
			}
			for _, p := range []string{"readinessProbe", "livenessProbe"} {
				if path := get(cm, p, "httpGet", "path"); path != nil {
					probes = append(probes, fmt.Sprintf("%s %v", p, path))
				}
			}
		}
		switch comp {
		case "appkeys-keyservice":
			for _, want := range []string{"readinessProbe /readyz", "livenessProbe /healthz"} {
				if !slices.Contains(probes, want) {
					t.Errorf("Deployment %v: no %s (has %v)", name, want, probes)
				}
			}
			for _, want := range []string{"APPKEYS_MASTER_KEY", "APPKEYS_DATABASE_URL"} {
				if !slices.Contains(env, want) {
					t.Errorf("Deployment %v: no %s in the environment", name, want)
				}
			}
		case "appkeys-sidecar":
			if len(containers) < 2 {
				t.Errorf("Deployment %v: want the app and the caddy sidecar containers", name)
			}
		default:
			t.Errorf("Deployment %v: app.kubernetes.io/component %q is neither appkeys-keyservice nor appkeys-sidecar (prometheus.yml keeps only those)", name, comp)
		}
	}
	slices.Sort(components)
	if !slices.Equal(slices.Compact(components), []string{"appkeys-keyservice", "appkeys-sidecar"}) {
		t.Errorf("want a key-service and a sidecar Deployment, have components %v", components)
	}
}

func get(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

func asList(v any) []any { l, _ := v.([]any); return l }

// TestDeploySettingsTable checks that docs/deploy.md's settings table names
// every flag and environment variable `appkeys serve` reads (as written in
// cmd/appkeys/serve*.go), and nothing else.
func TestDeploySettingsTable(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("../cmd/appkeys/serve*.go")
	if err != nil {
		t.Fatal(err)
	}
	var parsed []*ast.File
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
	}
	var flags, envs []string
	lit := func(e ast.Expr) (string, bool) {
		bl, ok := e.(*ast.BasicLit)
		if !ok || bl.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(bl.Value)
		return s, err == nil
	}
	for _, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			switch {
			case strings.HasSuffix(sel.Sel.Name, "Var") && len(call.Args) >= 2: // fl.StringVar(&x, "name", …)
				if s, ok := lit(call.Args[1]); ok {
					flags = append(flags, "--"+s)
				}
			case (sel.Sel.Name == "Getenv" || sel.Sel.Name == "LookupEnv") && len(call.Args) == 1:
				if s, ok := lit(call.Args[0]); ok {
					envs = append(envs, s)
				}
			}
			return true
		})
	}
	if len(flags) < 5 || len(envs) < 3 {
		t.Fatalf("read %v and %v from serve.go; the parse is broken", flags, envs)
	}
	b, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "### Settings")
	if start < 0 {
		t.Fatal("docs/deploy.md has no ### Settings section")
	}
	section := doc[start:]
	if end := strings.Index(section[1:], "\n#"); end >= 0 {
		section = section[:end+1]
	}
	var rows []string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "| `") || strings.HasPrefix(line, "| |") {
			rows = append(rows, line)
		}
	}
	cell := regexp.MustCompile("`(--[a-z-]+|APPKEYS_[A-Z_]+)`")
	documented := map[string]bool{}
	for _, r := range rows {
		cols := strings.Split(r, "|")
		if len(cols) < 4 {
			continue
		}
		for _, m := range cell.FindAllStringSubmatch(cols[1]+cols[2], -1) {
			documented[m[1]] = true
		}
	}
	for _, name := range append(flags, envs...) {
		if !documented[name] {
			t.Errorf("docs/deploy.md's settings table lacks %s, which appkeys serve reads", name)
		}
	}
	for name := range documented {
		if !slices.Contains(flags, name) && !slices.Contains(envs, name) {
			t.Errorf("docs/deploy.md's settings table lists %s, which appkeys serve does not read", name)
		}
	}
}

// TestK8sTokenPlaceholdersRefused: the bootstrap tokens in configs/k8s's
// Secrets are placeholders the key service refuses to start on (were they
// accepted, everyone who read the example would hold the credential), and
// the manifest says how to make real ones.
func TestK8sTokenPlaceholdersRefused(t *testing.T) {
	kinds := map[string]keyservice.TokenKind{"APPKEYS_ADMIN_TOKEN": keyservice.AdminToken, "APPKEYS_BOOTSTRAP_TOKEN": keyservice.OwnerToken}
	seen := 0
	for _, obj := range k8sObjects(t) {
		data, _ := obj["stringData"].(map[string]any)
		for env, kind := range kinds {
			v, ok := data[env].(string)
			if !ok {
				continue
			}
			seen++
			if err := kind.Check(v); err == nil {
				t.Errorf("configs/k8s sets %s to %q, which the key service would accept as a real token", env, v)
			}
		}
	}
	if seen != len(kinds) {
		t.Fatalf("found %d of the %d token settings in configs/k8s", seen, len(kinds))
	}
	b, err := os.ReadFile("k8s/keyservice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"gen-token admin", "gen-token owner"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("configs/k8s/keyservice.yaml does not show %q", want)
		}
	}
}
