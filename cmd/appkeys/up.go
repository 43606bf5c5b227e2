package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile" // the caddyfile adapter
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/spf13/cobra"

	_ "github.com/appkeys/appkeys/caddymodule"
	"github.com/appkeys/appkeys/internal/client"
	"github.com/appkeys/appkeys/internal/keyserver"
)

func init() { commands = append(commands, newUpCmd) }

// upFlags are the addresses of the one-machine stack.
type upFlags struct {
	serve    serveFlags
	listen   string
	upstream string
	admin    string
}

// sampleApp is what `up` remembers between runs: the verifier token is shown
// only once, so the sidecar of a second run needs it from here.
type sampleApp struct {
	AppID         string `json:"app_id"`
	VerifierToken string `json:"verifier_token"`
}

const sampleAppName = "hello-function"

func newUpCmd() *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the whole stack on this machine: key service, a sample Cloud Function and the Caddy sidecar",
		Long: `Run the whole stack on one machine for a first look: the key service on
SQLite (in --data), a sample Cloud Function, and Caddy with the appkey_auth
module in front of it. It creates what it needs, prints a working key and the
curl line to try it, and stops everything on Ctrl-C. A second run reuses the
data directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runUp(ctx, &f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.serve.register(cmd, "127.0.0.1:8700")
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:8080", "address of the sidecar (Caddy) in front of the sample app")
	cmd.Flags().StringVar(&f.upstream, "upstream", "127.0.0.1:9000", "address of the sample Cloud Function")
	cmd.Flags().StringVar(&f.admin, "caddy-admin", "127.0.0.1:2019", "address of Caddy's admin endpoint (metrics at /metrics)")
	return cmd
}

func runUp(ctx context.Context, f *upFlags, stdout, stderr io.Writer) error {
	if f.serve.logLevel == "info" {
		f.serve.logLevel = "warn" // keep the terminal for what `up` prints
	}
	cfg, err := f.serve.config(stderr)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL != "" {
		return errors.New("up runs on embedded SQLite; use serve for PostgreSQL")
	}
	ks, err := keyserver.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ks.Close(sctx)
	}()

	ownerToken := ks.Bootstrap.OwnerToken
	if ownerToken == "" {
		raw, err := os.ReadFile(ks.Bootstrap.OwnerTokenFile)
		if err != nil {
			return fmt.Errorf("read the owner token of the existing data directory: %w", err)
		}
		ownerToken = strings.TrimSpace(string(raw))
	}
	// The sample app is made through the API, as any user would make one.
	owner, err := client.New(ks.URL, ownerToken, client.WithUserAgent("appkeys-up"))
	if err != nil {
		return err
	}
	if _, err := owner.Me(ctx); err != nil {
		return fmt.Errorf("the owner token in %s no longer works: %w", ks.Bootstrap.OwnerTokenFile, err)
	}
	app, err := ensureSampleApp(ctx, owner, filepath.Join(cfg.DataDir, "up-sample-app.json"))
	if err != nil {
		return err
	}
	created, err := owner.CreateKey(ctx, app.AppID, client.CreateKeyRequest{
		Name:      "appkeys up " + time.Now().UTC().Format("2006-01-02 15:04:05"),
		ExpiresAt: time.Now().Add(30 * 24 * time.Hour),
	})
	if err != nil {
		return fmt.Errorf("create a key for the sample app: %w", err)
	}

	upstream, err := startSampleFunction(f.upstream)
	if err != nil {
		return err
	}
	defer upstream.Close()

	host, _, err := net.SplitHostPort(f.listen)
	if err != nil {
		return fmt.Errorf("invalid --listen %q: %w", f.listen, err)
	}
	caddyfile := fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	log {
		level ERROR
	}
}

http://%s {
	bind %s
	appkey_auth {
		key_service %s
		app %s
		verifier_token {env.APPKEYS_VERIFIER_TOKEN}
	}
	reverse_proxy %s
}
`, f.admin, f.listen, host, ks.URL, app.AppID, f.upstream)
	caddyfilePath := filepath.Join(cfg.DataDir, "Caddyfile.up")
	if err := os.WriteFile(caddyfilePath, []byte(caddyfile), 0o600); err != nil {
		return err
	}
	// The Caddyfile names the token by placeholder, as a real deployment
	// would; it never sits in the file.
	os.Setenv("APPKEYS_VERIFIER_TOKEN", app.VerifierToken)
	cfgJSON, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": caddyfilePath})
	if err != nil {
		return fmt.Errorf("adapt the sidecar's Caddyfile: %w", err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "caddyfile: %s\n", w.String())
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		return fmt.Errorf("start the sidecar: %w", err)
	}
	defer caddy.Stop()

	sidecar := "http://" + f.listen
	fmt.Fprintf(stdout, `
appkeys is up.

  key service   %s   (data in %s)
  sample app    %s "%s" behind the sidecar
  sidecar       %s   (Caddy with appkey_auth; config in %s)
  metrics       http://%s/metrics

A key for the sample app (shown once; it expires in 30 days):

  %s

Try it:

  curl -H "Authorization: Bearer %s" %s/

Without a key, or after revoking it, the sidecar answers 401.
Console: %s/ — log in with the owner token in %s
Command line: export APPKEYS_URL=%s APPKEYS_TOKEN=$(cat %s)

Press Ctrl-C to stop.
`, ks.URL, cfg.DataDir, app.AppID, sampleAppName, sidecar, caddyfilePath, f.admin,
		created.PlainKey, created.PlainKey, sidecar, ks.URL, ks.Bootstrap.OwnerTokenFile, ks.URL, ks.Bootstrap.OwnerTokenFile)

	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "\nStopping.")
	case err := <-waitChan(ks):
		return fmt.Errorf("key service stopped: %w", err)
	}
	return nil
}

// ensureSampleApp returns the sample app recorded in path, creating the app
// (and the record) when there is none or it was deleted since.
func ensureSampleApp(ctx context.Context, owner *client.Client, path string) (sampleApp, error) {
	var rec sampleApp
	if raw, err := os.ReadFile(path); err == nil && json.Unmarshal(raw, &rec) == nil && rec.AppID != "" {
		if _, err := owner.GetApp(ctx, rec.AppID); err == nil {
			return rec, nil
		}
	}
	name := sampleAppName
	var res *client.CreatedApp
	var err error
	for i := 2; i < 100; i++ {
		res, err = owner.CreateApp(ctx, client.CreateAppRequest{Name: name, Kind: client.KindCloudFunction})
		if !client.IsCode(err, client.CodeConflict) {
			break
		}
		name = fmt.Sprintf("%s-%d", sampleAppName, i)
	}
	if err != nil {
		return sampleApp{}, fmt.Errorf("create the sample app: %w", err)
	}
	rec = sampleApp{AppID: res.ID, VerifierToken: res.VerifierToken}
	raw, _ := json.Marshal(rec)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return sampleApp{}, err
	}
	return rec, nil
}

// startSampleFunction runs the sample Cloud Function: it greets the caller
// and shows which key the sidecar let in.
func startSampleFunction(addr string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start the sample app on %s: %w", addr, err)
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"message": "Hello from the sample Cloud Function",
				"key_id":  r.Header.Get("X-Appkeys-Key-Id"),
				"app_id":  r.Header.Get("X-Appkeys-App-Id"),
				"path":    r.URL.Path,
			})
		}),
	}
	go srv.Serve(ln)
	return srv, nil
}
