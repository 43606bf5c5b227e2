package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// TestServeRefusesGuessableTokens: `appkeys serve` with a placeholder or a
// pattern for APPKEYS_ADMIN_TOKEN or APPKEYS_BOOTSTRAP_TOKEN exits non-zero
// before it opens the store, with one line that names the variable and
// says how to make a good one, and never shows the token.
func TestServeRefusesGuessableTokens(t *testing.T) {
	good := "aku_7dQm2ZkR9vXc4LpT1sWb8NfJ3hYg6AeU0oKiVtqMxCz"
	cases := []struct {
		env, token string
	}{
		{"APPKEYS_ADMIN_TOKEN", "aka_REPLACE_WITH_RANDOM_CHARACTERS"},
		{"APPKEYS_BOOTSTRAP_TOKEN", "aku_REPLACE_WITH_RANDOM_CHARACTERS"},
		{"APPKEYS_BOOTSTRAP_TOKEN", "aku_" + strings.Repeat("0", 43)},
		{"APPKEYS_ADMIN_TOKEN", "aka_short"},
	}
	for _, tc := range cases {
		t.Run(tc.env+" "+tc.token[:8], func(t *testing.T) {
			data := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestMainProcess$", "--",
				"serve", "--addr", "127.0.0.1:0", "--data", data)
			cmd.Env = append(os.Environ(), "APPKEYS_CLI_TEST_MAIN=1", "APPKEYS_DATABASE_URL=", "APPKEYS_MASTER_KEY=",
				"APPKEYS_ADMIN_TOKEN=", "APPKEYS_BOOTSTRAP_TOKEN="+good, tc.env+"="+tc.token)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exit: %v; want status 1 (stderr %q)", err, stderr.String())
			}
			line := stderr.String()
			if strings.Count(line, "\n") != 1 || !strings.HasPrefix(line, "appkeys: "+tc.env+" ") || !strings.Contains(line, "appkeys gen-token") {
				t.Errorf("stderr %q; want one line naming %s and the command that makes a token", line, tc.env)
			}
			if strings.Contains(stdout.String()+line, tc.token) || strings.Contains(stdout.String()+line, good) {
				t.Error("a token was printed")
			}
			if entries, _ := os.ReadDir(data); len(entries) != 0 {
				t.Errorf("the data directory has %d entries; want nothing written before the refusal", len(entries))
			}
		})
	}
}

// TestGenToken: `appkeys gen-token admin|owner` prints one new token of the
// shape the service mints, which serve accepts.
func TestGenToken(t *testing.T) {
	for kind, re := range map[string]*regexp.Regexp{
		"admin": regexp.MustCompile(`^aka_[0-9A-Za-z]{43}\n$`),
		"owner": regexp.MustCompile(`^aku_[0-9A-Za-z]{43}\n$`),
	} {
		a, b := runCLI(t, nil, "gen-token", kind), runCLI(t, nil, "gen-token", kind)
		if a.err != nil || !re.MatchString(a.stdout) || a.stderr != "" {
			t.Fatalf("gen-token %s: %q %q %v", kind, a.stdout, a.stderr, a.err)
		}
		if a.stdout == b.stdout {
			t.Fatalf("gen-token %s printed the same token twice", kind)
		}
		var f serveFlags
		f.register(&cobra.Command{}, "127.0.0.1:0")
		env := map[string]string{"admin": "APPKEYS_ADMIN_TOKEN", "owner": "APPKEYS_BOOTSTRAP_TOKEN"}[kind]
		t.Setenv(env, strings.TrimSpace(a.stdout))
		if _, err := f.config(io.Discard); err != nil {
			t.Fatalf("serve refuses the token gen-token made: %v", err)
		}
	}
	for _, args := range [][]string{{"gen-token"}, {"gen-token", "verifier"}, {"gen-token", "admin", "owner"}} {
		if r := runCLI(t, nil, args...); r.err == nil || r.stdout != "" {
			t.Errorf("%v: %q, %v; want an error and no token", args, r.stdout, r.err)
		}
	}
}
