package crashtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// appkeysBin is the appkeys binary built once for the whole run.
var appkeysBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "appkeys-crashtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	appkeysBin = filepath.Join(dir, "appkeys")
	// A plain build (no -race): the binary under test is the one users run,
	// and the race detector would slow the load the kill interrupts.
	cmd := exec.Command(goTool(), "build", "-o", appkeysBin, "github.com/appkeys/appkeys/cmd/appkeys")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "crashtest: go build ./cmd/appkeys:", err)
		return 1
	}
	return m.Run()
}

// goTool finds the go command that runs this test.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
