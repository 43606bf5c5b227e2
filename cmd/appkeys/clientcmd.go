package main

// What the client command groups (orgs, users, apps, keys, secrets) share:
// the connection flags, the two output formats, the revoke/delete
// confirmation and the --expires parser.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/appkeys/appkeys/internal/client"
)

const (
	defaultURL = "http://127.0.0.1:8700"
	envURL     = "APPKEYS_URL"
	envToken   = "APPKEYS_TOKEN"
)

// clientFlags are the connection and output flags of every client command.
type clientFlags struct {
	url    string
	token  string
	output string
	cmd    *cobra.Command
}

// addClientFlags puts --url, --token and -o on a command group. They are
// persistent on the group because main.go owns the root and each group
// registers itself; to the user they read as global flags.
func addClientFlags(group *cobra.Command) *clientFlags {
	f := &clientFlags{cmd: group}
	pf := group.PersistentFlags()
	pf.StringVar(&f.url, "url", defaultURL, "key service URL (env "+envURL+")")
	// No default shown from the environment: help output must never print a token.
	pf.StringVar(&f.token, "token", "", "bearer token (env "+envToken+")")
	pf.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	return f
}

// client checks the flags and returns a client for the key service. A flag
// wins over its environment variable, which wins over the default.
func (f *clientFlags) client() (*client.Client, error) {
	if f.output != "table" && f.output != "json" {
		return nil, fmt.Errorf("invalid output format %q: use table or json", f.output)
	}
	pf := f.cmd.PersistentFlags()
	url := f.url
	if !pf.Changed("url") {
		if v := os.Getenv(envURL); v != "" {
			url = v
		}
	}
	token := f.token
	if !pf.Changed("token") {
		token = os.Getenv(envToken)
	}
	if strings.TrimSpace(token) == "" {
		return nil, fmt.Errorf("no token: set %s or pass --token", envToken)
	}
	return client.New(url, strings.TrimSpace(token), client.WithUserAgent("appkeys-cli"))
}

func (f *clientFlags) json() bool { return f.output == "json" }

// run makes a command's RunE that builds the client from the flags before
// calling do, as every client command begins.
func (f *clientFlags) run(do func(cmd *cobra.Command, args []string, c *client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := f.client()
		if err != nil {
			return err
		}
		return do(cmd, args, c)
	}
}

// show prints an answer: v as JSON with -o json, else what text writes.
func (f *clientFlags) show(cmd *cobra.Command, v any, text func(io.Writer) error) error {
	if f.json() {
		return printJSON(cmd.OutOrStdout(), v)
	}
	return text(cmd.OutOrStdout())
}

// showFields is show for one object printed as NAME VALUE lines.
func (f *clientFlags) showFields(cmd *cobra.Command, v any, fields [][2]string) error {
	return f.show(cmd, v, func(w io.Writer) error { return printFields(w, fields) })
}

// showOnce is showFields for an answer holding a credential the service
// shows only this once: the notice (see tokenOnceNotice) follows the
// fields, or goes to standard error with -o json so the JSON stays
// parseable.
func (f *clientFlags) showOnce(cmd *cobra.Command, v any, notice string, fields [][2]string) error {
	if f.json() {
		fmt.Fprintln(cmd.ErrOrStderr(), notice)
		return printJSON(cmd.OutOrStdout(), v)
	}
	if err := printFields(cmd.OutOrStdout(), fields); err != nil {
		return err
	}
	_, err := fmt.Fprintln(cmd.OutOrStdout(), "\n"+notice)
	return err
}

// done tells the user, in table mode, what a command that answers nothing
// did; -o json prints nothing, as the API answers 204.
func (f *clientFlags) done(cmd *cobra.Command, format string, args ...any) {
	if !f.json() {
		fmt.Fprintf(cmd.OutOrStdout(), format+"\n", args...)
	}
}

// printJSON writes v as indented JSON, the -o json form.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table is a tab-separated table aligned on flush.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = cell(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// cell makes server-supplied text safe for one table cell: a tab or newline
// in a name would break the columns, and escape sequences would reach the
// terminal. An empty cell shows as "-" so columns stay readable.
func cell(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if s = strings.TrimSpace(s); s == "" {
		return "-"
	}
	return s
}

// printFields writes one object as a two-column table, name then value.
func printFields(w io.Writer, fields [][2]string) error {
	t := newTable(w)
	for _, f := range fields {
		t.row(f[0], f[1])
	}
	return t.flush()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func fmtLastUsed(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmtTime(*t)
}

// errCancelled is the answer to a confirmation that was not "y".
var errCancelled = errors.New("cancelled: nothing was changed")

// terminal is implemented by an input that knows whether it is a terminal;
// tests use it to stand in for one.
type terminal interface{ IsTerminal() bool }

func isTerminal(r io.Reader) bool {
	switch in := r.(type) {
	case terminal:
		return in.IsTerminal()
	case *os.File:
		return term.IsTerminal(int(in.Fd()))
	}
	return false
}

// confirm asks "prompt [y/N]" on the terminal unless yes is set. Without a
// terminal it refuses rather than read an answer from a pipe: a script that
// deletes must say so with --yes. prompt is called only when there is someone
// to ask, so it may fetch what it names.
func confirm(cmd *cobra.Command, yes bool, action string, prompt func() (string, error)) error {
	if yes {
		return nil
	}
	in := cmd.InOrStdin()
	if !isTerminal(in) {
		return fmt.Errorf("refusing to %s without confirmation: standard input is not a terminal; pass --yes", action)
	}
	p, err := prompt()
	if err != nil {
		return err
	}
	fmt.Fprint(cmd.ErrOrStderr(), p+" [y/N] ")
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(cmd.ErrOrStderr())
		return errCancelled
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errCancelled
}

// maxExpiryCount bounds the N of --expires Nd/Nh so the duration cannot
// overflow; the service enforces the real maximum lifetime.
const maxExpiryCount = 100 * 365 * 24

// parseWithin reads --expiring-within: a number of days ("7d") or a Go
// duration ("36h"), more than zero. The service enforces the upper bound
// (the longest key lifetime) and says it.
func parseWithin(s string) (time.Duration, error) {
	bad := fmt.Errorf("invalid --expiring-within %q: use a number of days (7d) or a duration (36h), more than zero", s)
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok && isDigits(n) {
		days, err := strconv.Atoi(n)
		if err != nil || days > maxExpiryCount {
			return 0, bad
		}
		d = time.Duration(days) * 24 * time.Hour
	} else if v, err := time.ParseDuration(s); err == nil {
		d = v
	}
	if d <= 0 {
		return 0, bad
	}
	return d, nil
}

// parseExpires reads --expires: a number of days ("30d") or hours ("12h")
// from now, a date ("2027-01-31") meaning the end of that day in UTC (the
// next midnight UTC, so the key lives through the whole day), or an RFC 3339
// time. The result is in UTC and after now.
func parseExpires(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("invalid --expires %q: use days or hours from now (30d, 12h), a date (2027-01-31, the end of that day UTC) or an RFC 3339 time (2027-01-31T12:00:00Z)", s)
	}
	if s == "" {
		return time.Time{}, errors.New("--expires is required: e.g. 30d, 12h or 2027-01-31")
	}
	var t time.Time
	switch unit := s[len(s)-1]; {
	case (unit == 'd' || unit == 'h') && len(s) > 1 && isDigits(s[:len(s)-1]):
		n, err := strconv.Atoi(s[:len(s)-1])
		if err != nil || n > maxExpiryCount {
			return bad()
		}
		if n == 0 {
			return time.Time{}, fmt.Errorf("invalid --expires %q: the key must live at least an hour", s)
		}
		d := time.Duration(n) * time.Hour
		if unit == 'd' {
			d *= 24
		}
		t = now.Add(d)
	case len(s) == len("2006-01-02"):
		day, err := time.ParseInLocation("2006-01-02", s, time.UTC)
		if err != nil {
			return bad()
		}
		t = day.AddDate(0, 0, 1)
	default:
		var err error
		if t, err = time.Parse(time.RFC3339, s); err != nil {
			return bad()
		}
	}
	t = t.UTC().Truncate(time.Second)
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("invalid --expires %q: %s is not in the future", s, t.Format(time.RFC3339))
	}
	return t, nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
