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
	// The binary is built the way these tests are. Under -race (make test)
	// it reuses the packages the other -race tests compiled, where a plain
	// build would compile the module, Caddy and SQLite once more (minutes
	// on a cold machine), and the detector watches the service under the
	// load the kill interrupts. Without -race it is the binary users run.
	args := []string{"build", "-o", appkeysBin}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.Command(goTool(), append(args, "github.com/appkeys/appkeys/cmd/appkeys")...)
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
