package configs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ourRule is the id of our rule in configs/gitleaks.toml.
const ourRule = "appkeys-api-key"

// gitleaksBinary returns the gitleaks that scripts/ensure-gitleaks.sh built
// (make test runs it first), or $APPKEYS_GITLEAKS. Without one the test is
// skipped, except on CI, where a missing scanner must not pass for a clean scan.
func gitleaksBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("APPKEYS_GITLEAKS")
	if bin == "" {
		bin = filepath.Join("..", ".tools", "gitleaks")
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("no gitleaks at %s: run scripts/ensure-gitleaks.sh (make test does)", bin)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	if got, want := strings.TrimSpace(string(out)), pinnedGitleaks(t); got != want {
		t.Fatalf("%s is gitleaks %s; tools/gitleaks/go.mod pins %s: run scripts/ensure-gitleaks.sh", bin, got, want)
	}
	return bin
}

// pinnedGitleaks reads the one place gitleaks' version is pinned.
func pinnedGitleaks(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../tools/gitleaks/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/zricethezav/gitleaks/v8" {
			return f[1]
		}
	}
	t.Fatal("tools/gitleaks/go.mod does not require gitleaks")
	return ""
}

// leak is the part of a gitleaks JSON report finding the tests read.
type leak struct {
	RuleID    string
	File      string
	StartLine int
	Secret    string
}

func (l leak) String() string { return fmt.Sprintf("%s:%d %s", l.File, l.StartLine, l.RuleID) }

// runGitleaks scans dir with configs/gitleaks.toml the way the docs tell
// users to, and returns the findings, file names relative to dir.
func runGitleaks(t *testing.T, bin, dir string) []leak {
	t.Helper()
	config, err := filepath.Abs("gitleaks.toml")
	if err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dir", ".", "--config", config,
		"--report-format", "json", "--report-path", report,
		"--exit-code", "0", "--no-banner", "--no-color", "--log-level", "warn")
	cmd.Dir = dir
	// Only our flags choose the config.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "GITLEAKS_") })
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gitleaks dir: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var leaks []leak
	if err := json.Unmarshal(b, &leaks); err != nil {
		t.Fatalf("gitleaks report: %v", err)
	}
	for i := range leaks {
		leaks[i].File = filepath.ToSlash(filepath.Clean(leaks[i].File))
	}
	return leaks
}

// TestGitleaksFindsKeys runs the real gitleaks with configs/gitleaks.toml over
// keys in .env, YAML, JSON and shell, and over near-misses: every key is
// found at its file and line, and nothing else is, by our rule.
func TestGitleaksFindsKeys(t *testing.T) {
	bin := gitleaksBinary(t)
	dir := t.TempDir()
	want, why := writeFixture(t, dir, scannerFixture(t))
	var got []string
	for _, l := range runGitleaks(t, bin, dir) {
		if l.RuleID == ourRule {
			got = append(got, fmt.Sprintf("%s:%d:%s", l.File, l.StartLine, l.Secret))
		}
	}
	slices.Sort(got)
	for _, g := range got {
		if !slices.Contains(want, g) {
			at := g[:strings.LastIndex(g, ":")]
			t.Errorf("gitleaks reported %s (%s), which is not a key", g, why[at])
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("gitleaks missed the key at %s (%s)", w, why[w])
		}
	}
}

// TestGitleaksPassesOurRepository runs the same scan over every file git
// tracks here: our test data must not look like a leak, to our rule or to
// gitleaks' own, except what .gitleaksignore lists and explains.
func TestGitleaksPassesOurRepository(t *testing.T) {
	bin := gitleaksBinary(t)
	out, err := exec.Command("git", "-C", "..", "ls-files", "-z").Output()
	if err != nil || len(out) == 0 {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		msg := fmt.Sprintf("git ls-files: %v %s", err, stderr)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// A copy of the tracked files, so untracked ones (data directories,
	// built binaries) neither slow the scan nor change its answer.
	dir := t.TempDir()
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if err := copyFile(filepath.Join("..", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range runGitleaks(t, bin, dir) {
		t.Errorf("gitleaks flags %s: test data that looks like a secret; build it at run time, "+
			"end the line with a gitleaks:allow comment, or add %s:%s:%d to .gitleaksignore with the reason",
			l, l.File, l.RuleID, l.StartLine)
	}
}

// copyFile copies a regular file, making its directory; a file git tracks
// but the work tree has deleted, or a symlink, is left out.
func copyFile(from, to string) error {
	fi, err := os.Lstat(from)
	if os.IsNotExist(err) || err == nil && !fi.Mode().IsRegular() {
		return nil
	}
	if err != nil {
		return err
	}
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
