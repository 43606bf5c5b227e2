// Package harness holds what the benchmark commands under bench/ share:
// building and running the binaries under test as their own processes,
// reading their CPU time and memory from /proc, scraping their Prometheus
// endpoints, and loopback servers and ports.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Build compiles the Go package pkg (such as "./cmd/caddy") into dir and
// returns the binary's path.
func Build(ctx context.Context, dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	fmt.Fprintf(os.Stderr, "building %s ...\n", pkg)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	return bin, nil
}

// Proc is a child process whose output goes to a log file.
type Proc struct {
	Name string
	PID  int
	cmd  *exec.Cmd
	log  string
	done chan error
}

// Start runs bin with args and extra environment variables, logging to
// <dir>/<name>.log. HOME and the XDG directories point into dir, so the
// process leaves nothing behind elsewhere.
func Start(name, dir, bin string, env []string, args ...string) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	p := &Proc{Name: name, PID: cmd.Process.Pid, cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); lf.Close() }()
	return p, nil
}

// Stop asks the process to quit, and kills it if it does not within 10 s.
func (p *Proc) Stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Exited returns the process's exit error once it has ended, and nil while
// it runs.
func (p *Proc) Exited() error {
	select {
	case err := <-p.done:
		p.done <- err // keep it for Stop and later calls
		if err == nil {
			err = errors.New("exited")
		}
		return fmt.Errorf("%s %w\n%s", p.Name, err, p.Tail())
	default:
		return nil
	}
}

// Tail is the end of the process's log.
func (p *Proc) Tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// WaitFor polls ready every 50 ms until it is true, the process ends, or
// bound passes.
func (p *Proc) WaitFor(ctx context.Context, bound time.Duration, what string, ready func() bool) error {
	deadline := time.Now().Add(bound)
	for !ready() {
		if err := p.Exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %s within %s\n%s", p.Name, what, bound, p.Tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// CPU is a process's user plus system CPU time, from /proc/PID/stat.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // utime, field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	if err1 != nil || err2 != nil {
		return 0, errors.New("unreadable /proc stat times")
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

// CPUPrecise is a process's CPU time in nanoseconds, summed over its
// threads from /proc/PID/task/*/schedstat: CPU's 10 ms ticks are too coarse
// for work of a few milliseconds. Threads that have ended are not counted,
// which a Go program's rarely do.
func CPUPrecise(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread ended meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, errors.New("unreadable /proc schedstat")
		}
		total += ns
	}
	return time.Duration(total), nil
}

// RSS is a process's resident set size in bytes, from /proc/PID/status.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// Loadavg is the machine's 1, 5 and 15 minute load averages.
func Loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Metrics is one scrape of a Prometheus text endpoint: each family's
// samples summed over their labels under the family's name, and each
// labelled sample under its full series name as well, such as
// `appkeys_feed_store_reads_total{read="follow"}`.
type Metrics map[string]float64

// Scrape reads url (a /metrics endpoint).
func Scrape(ctx context.Context, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	m := Metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name := line[:sp]
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			m[name] += v
			name = name[:i]
		}
		m[name] += v
	}
	return m, sc.Err()
}

// Server is an http.Server on a loopback port.
type Server struct {
	Addr string
	srv  *http.Server
}

// Close stops the server at once.
func (s *Server) Close() { s.srv.Close() }

// Serve runs h on a free loopback port.
func Serve(h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go srv.Serve(ln)
	return &Server{Addr: ln.Addr().String(), srv: srv}, nil
}

// FreePorts returns n loopback ports that were free a moment ago.
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Status sends GET url with hdr and returns the answer's status.
func Status(ctx context.Context, url string, hdr http.Header) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if hdr != nil {
		req.Header = hdr.Clone()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Median is the median of xs (the mean of the middle two for an even
// count); xs is left as it was.
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Verdict words a goal's outcome for a report.
func Verdict(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}

// RoundFlags are the settings of a side-by-side benchmark's rounds, shared by
// bench/sidecar and bench/verify so that their figures mean the same.
type RoundFlags struct {
	Duration, Warmup time.Duration
	Rounds, Workers  int
}

// Flags registers -duration, -warmup, -rounds and -workers on the command
// line, with the defaults both benchmarks were calibrated with.
func (r *RoundFlags) Flags() {
	flag.DurationVar(&r.Duration, "duration", 4*time.Second, "measured time of each round")
	flag.DurationVar(&r.Warmup, "warmup", time.Second, "unmeasured warm-up before each round")
	flag.IntVar(&r.Rounds, "rounds", 5, "rounds of each target, interleaved")
	flag.IntVar(&r.Workers, "workers", 16, "concurrent connections of the load generator")
}

// Main parses the command line, runs a benchmark until it ends or the user
// interrupts it, and exits non-zero with one line naming what failed.
func Main(name string, run func(ctx context.Context) error) {
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Quantile is the q-quantile (0 < q ≤ 1) of xs by the nearest-rank
// method, 0 for none; xs is left as it was.
func Quantile(xs []time.Duration, q float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(max(int(math.Ceil(float64(len(s))*q))-1, 0), len(s)-1)]
}

// RaiseFileLimit sets this process's open-file limit to its hard limit,
// which the programs it starts inherit, and returns the hard limit.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Max, nil
}

// TempDir makes a temporary directory for a run; done removes it, unless
// keep, when its path is printed on stderr instead.
func TempDir(prefix string, keep bool) (dir string, done func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "directory:", dir)
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
