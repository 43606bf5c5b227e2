package keyservice

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/store"
)

// What a leak report does to a leaked key that still works (--leak-action).
const (
	// LeakRevoke revokes it at once, with the reason RevokeLeaked.
	LeakRevoke = "revoke"
	// LeakNotify keeps it working, marked leaked, for its owners to act on.
	LeakNotify = "notify"
)

// RevokeLeaked is the revoke reason of a key revoked by a leak report.
const RevokeLeaked = store.RevokeLeaked

// Labels of GitHub's feedback on each match.
const (
	LabelTruePositive  = "true_positive"
	LabelFalsePositive = "false_positive"
)

// Bounds of leak reports.
const (
	// MaxLeakReportBytes bounds a report's body: a thousand matches with
	// long URLs fit with room to spare.
	MaxLeakReportBytes = 2 << 20
	// DefaultLeakReportRate and DefaultLeakReportBurst bound the reports
	// one client address may send, signed or not. GitHub sends a few.
	DefaultLeakReportRate  = 5
	DefaultLeakReportBurst = 50
	// leakChunk is how many keys one transaction marks; the feed is woken
	// after each, so sidecars refuse the first keys while the rest are
	// still being written.
	leakChunk = 100
	// maxLeakReporters bounds the client addresses whose report budgets
	// are remembered.
	maxLeakReporters = 10000
	// leakActor is the audit actor of what a leak report does.
	leakActor = "github-secret-scanning"
)

// LeakReport is a POST of GitHub's secret scanning partner program: its
// signature headers and its body, as they came. From is the client's
// address, for the rate limit.
type LeakReport struct {
	From          string
	KeyIdentifier string // Github-Public-Key-Identifier
	Signature     string // Github-Public-Key-Signature
	Body          io.Reader
}

// LeakFeedback is GitHub's feedback on one match: the SHA-256 (hex) of
// the token, never the token.
type LeakFeedback struct {
	TokenHash string
	TokenType string
	Label     string
}

// LeakResult answers a report: one feedback per match, in order, and how
// many keys it revoked, or marked leaked (LeakNotify).
type LeakResult struct {
	Feedback []LeakFeedback
	Revoked  int
	Marked   int
}

type leakMatch struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// ReportLeaks acts on a leak report. Nothing is read from the body, and
// nothing done, before its signature verifies against a public key of the
// leak keys' document (see leakKeys): a missing, malformed or wrong
// signature, or an identifier still unknown after the keys are read
// again, is KindUnauthorized. Then each match that is a well-formed key of
// a key that exists, in any organization, is a true positive; one not yet
// revoked is revoked (LeakRevoke) or marked leaked (LeakNotify), with an
// audit record of the match's url, source and type. Every other match (not
// ours, malformed, bad checksum, unknown) is a false positive and nothing
// more.
func (s *Service) ReportLeaks(ctx context.Context, r LeakReport) (LeakResult, error) {
	if ok, wait := s.leakThrottle.allow(r.From, s.now()); !ok {
		return LeakResult{}, &Error{Kind: KindRateLimited, Message: "too many leak reports from this address; slow down", RetryAfter: max(wait, time.Second)}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxLeakReportBytes+1))
	if err != nil {
		return LeakResult{}, &Error{Kind: KindBadRequest, Message: "the report's body could not be read", Err: err}
	}
	if len(body) > MaxLeakReportBytes {
		return LeakResult{}, errorf(KindBadRequest, "the report is larger than %d bytes", MaxLeakReportBytes)
	}
	if err := s.leakKeys.verify(ctx, r.KeyIdentifier, r.Signature, body); err != nil {
		if errors.Is(err, errLeakSignatureMissing) || errors.Is(err, errLeakSignatureBad) || errors.Is(err, errLeakKeyUnknown) {
			s.log.Warn("leak report refused", "reason", err.Error(), "from", r.From)
			return LeakResult{}, &Error{Kind: KindUnauthorized, Message: "missing or invalid GitHub signature: " + err.Error(), Err: err}
		}
		s.log.Error("leak report: cannot read the public keys", "err", err)
		return LeakResult{}, &Error{Kind: KindUnavailable, Message: "the public keys that sign leak reports cannot be read right now; try again", Err: err}
	}
	var matches []leakMatch
	if err := json.Unmarshal(body, &matches); err != nil || matches == nil {
		return LeakResult{}, errorf(KindBadRequest, "the report must be a JSON array of {token, type, url, source}")
	}
	return s.actOnLeaks(ctx, matches)
}

func (s *Service) actOnLeaks(ctx context.Context, matches []leakMatch) (LeakResult, error) {
	res := LeakResult{Feedback: make([]LeakFeedback, len(matches))}
	var hashes []string
	for i, m := range matches {
		sum := sha256.Sum256([]byte(m.Token))
		res.Feedback[i] = LeakFeedback{TokenHash: hex.EncodeToString(sum[:]), TokenType: m.Type, Label: LabelFalsePositive}
		if apikey.Parse(m.Token) != nil {
			continue // not ours, or not whole: no lookup
		}
		for _, h := range s.hasher.Candidates(m.Token) {
			hashes = append(hashes, h.String())
		}
	}
	keys, err := s.store.KeysByHashes(ctx, hashes)
	if err != nil {
		return LeakResult{}, s.storeErr(err)
	}
	byHash := make(map[string]store.Key, len(keys))
	for _, k := range keys {
		byHash[k.Hash] = k
	}
	var leaks []store.Leak
	seen := map[string]bool{}
	for i, m := range matches {
		if apikey.Parse(m.Token) != nil {
			continue
		}
		for _, h := range s.hasher.Candidates(m.Token) {
			k, ok := byHash[h.String()]
			if !ok {
				continue
			}
			res.Feedback[i].Label = LabelTruePositive
			if k.RevokedAt == nil && !seen[k.ID] {
				seen[k.ID] = true
				leaks = append(leaks, store.Leak{KeyID: k.ID, Detail: leakDetail(m)})
			}
			break
		}
	}
	revoke := s.leakAction != LeakNotify
	now := s.now().UTC()
	for chunk := range slices.Chunk(leaks, leakChunk) {
		changed, err := s.store.MarkLeaked(ctx, chunk, leakActor, revoke, now)
		if err != nil {
			// What committed stands, and GitHub sends the report again.
			return LeakResult{}, s.storeErr(err)
		}
		if revoke {
			res.Revoked += len(changed)
			s.feed.poke()
		} else {
			res.Marked += len(changed)
		}
	}
	s.log.Info("leak report", "matches", len(matches), "true_positives", len(seen), "revoked", res.Revoked, "marked_leaked", res.Marked)
	return res, nil
}

// leakDetail is the audit detail of a match: where GitHub found the key,
// never the key. GitHub's fields are bounded and stripped of control
// characters, so they read as one line.
func leakDetail(m leakMatch) string {
	return fmt.Sprintf("reported leaked by GitHub secret scanning: source %s, type %s, url %s",
		clean(strings.ToLower(m.Source), 64), clean(m.Type, 128), clean(m.URL, 1024))
}

func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return "(none)"
	}
	return truncate(s, n)
}
