package crashtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appkeys/appkeys/internal/client"
)

// Fixed credentials, so a restarted service is reachable with the tokens of
// its first start.
const (
	masterKey  = "Y3Jhc2h0ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=" // 32 bytes
	ownerToken = "aku_crashtestOwnerToken0123456789abcdefghijklmnop"
	adminToken = "aka_crashtestAdminToken0123456789abcdefghijklmnop"
)

// Bounds on every wait, so a hung service fails the test instead of it.
const (
	readyTimeout = 30 * time.Second
	exitTimeout  = 15 * time.Second
)

// service is one `appkeys serve` process.
type service struct {
	t       testing.TB
	URL     string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been waited for
	state   *os.ProcessState
}

// startService starts `appkeys serve` on dataDir (and on database, a
// PostgreSQL URL, when not empty), with the flags extra, and waits until
// /readyz answers. The process is killed when t ends, whatever happened.
func startService(t testing.TB, dataDir, database, name string, extra ...string) *service {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := tryStart(t, dataDir, database, name, extra)
		if err == nil {
			return s
		}
		// Another process may take the port between our probe and the
		// service's listen: try a new one.
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		t.Fatalf("start %s: %v", name, err)
	}
}

func tryStart(t testing.TB, dataDir, database, name string, extra []string) (*service, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--addr", addr, "--data", dataDir, "--log-level", "warn"}
	if database != "" {
		args = append(args, "--database", database)
	}
	args = append(args, extra...)
	logPath := filepath.Join(dataDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(appkeysBin, args...)
	cmd.Env = append(cleanEnv(),
		"APPKEYS_MASTER_KEY="+masterKey,
		"APPKEYS_BOOTSTRAP_TOKEN="+ownerToken,
		"APPKEYS_ADMIN_TOKEN="+adminToken,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &service{t: t, URL: "http://" + addr, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		s.state = cmd.ProcessState
		close(s.done)
	}()
	// Registered first, so it runs after the kill: a -race build reports a
	// data race in its own log and nowhere else.
	t.Cleanup(func() {
		b, err := os.ReadFile(logPath)
		if i := bytes.Index(b, []byte("WARNING: DATA RACE")); err == nil && i >= 0 {
			t.Errorf("the service reported a data race:\n%s", b[i:min(len(b), i+4096)])
		}
	})
	t.Cleanup(s.kill)

	c, err := client.New(s.URL, "", client.WithTimeout(time.Second))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("exited before ready (%v): %s", s.state, s.logTail())
		default:
		}
		err := c.Readyz(context.Background())
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("not ready within %v (last: %v): %s", readyTimeout, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanEnv is the test's environment without settings that would change
// which store the service opens.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "APPKEYS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// crash kills the process with SIGKILL and waits until it is gone. It fails
// the test if the process had already ended on its own: then the kill proved
// nothing.
func (s *service) crash() {
	s.t.Helper()
	select {
	case <-s.done:
		s.t.Fatalf("the service had exited before the kill (%v): %s", s.state, s.logTail())
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill -9: %v", err)
	}
	if !s.waitExit() {
		s.t.FailNow()
	}
	if ws, ok := s.state.Sys().(syscall.WaitStatus); ok && !(ws.Signaled() && ws.Signal() == syscall.SIGKILL) {
		s.t.Fatalf("the service ended with %v, not by SIGKILL: %s", s.state, s.logTail())
	}
}

// stop asks the service to shut down (SIGTERM) and reports whether it ended
// cleanly; it kills it when it does not end in time.
func (s *service) stop() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if !s.state.Success() {
			s.t.Errorf("the service ended with %v after SIGTERM: %s", s.state, s.logTail())
		}
	case <-time.After(exitTimeout):
		s.t.Errorf("the service did not end within %v of SIGTERM", exitTimeout)
		s.kill()
	}
}

// kill ends the process if it still runs; used by t.Cleanup.
func (s *service) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	s.waitExit()
}

func (s *service) waitExit() bool {
	select {
	case <-s.done:
		return true
	case <-time.After(exitTimeout):
		s.t.Errorf("process %d did not end within %v of SIGKILL", s.cmd.Process.Pid, exitTimeout)
		return false
	}
}

// logTail is the end of the service's output, for failure messages.
func (s *service) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "\n--- " + filepath.Base(s.logPath) + " ---\n" + string(bytes.TrimSpace(b))
}
