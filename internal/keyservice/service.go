// Package keyservice is the domain of appkeys: organizations, users and
// their roles, apps, API keys and their states, the Secrets store, the audit
// log and the change feed. It enforces who may do what; the store keeps it.
package keyservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/appkeys/appkeys/internal/apikey"
	"github.com/appkeys/appkeys/internal/store"
)

// Roles of a user inside an organization.
const (
	RoleOwner     = "owner"
	RoleAuraOwner = "aura_owner"
	RoleMember    = "member"
)

// App kinds.
const (
	KindCloudFunction = "cloud_function"
	KindDashboardApp  = "dashboard_app"
)

// Key states as the API shows them.
const (
	StateActive   = "active"
	StateOrphaned = "orphaned"
	StateExpired  = "expired"
	StateRevoked  = "revoked"
)

// Token prefixes tell the three kinds of bearer token apart.
const (
	adminTokenPrefix    = "aka_"
	userTokenPrefix     = "aku_"
	verifierTokenPrefix = "akv_"
	tokenRandomLen      = 43 // 256 bits of base62
	maxTokenLen         = 200
)

// DefaultMaxKeyLifetime bounds how far in the future a key may expire.
const DefaultMaxKeyLifetime = 365 * 24 * time.Hour

// Limits on what callers send.
const (
	MaxNameLen        = 100
	MaxEmailLen       = 254
	MaxSecretValueLen = 64 << 10
)

// expiryGrace absorbs clock skew between a client that computes "365 days
// from now" and this server.
const expiryGrace = 5 * time.Minute

var secretNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// validSecretName reports whether name may name a secret. "." and ".."
// match the alphabet but not a URL path segment: /v1/secrets/.. would be
// cleaned to another path, so such a secret could never be read or deleted.
func validSecretName(name string) bool {
	return secretNameRE.MatchString(name) && name != "." && name != ".."
}

const secretNameRule = "secret name must be 1 to 128 letters, digits, '_', '.' or '-', and not '.' or '..'"

// Config configures a Service.
type Config struct {
	Store     *store.Store
	MasterKey []byte
	// MaxKeyLifetime bounds key expiry; DefaultMaxKeyLifetime when zero.
	MaxKeyLifetime time.Duration
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
	// EventRetention is how long feed events are kept; 7 days when zero.
	EventRetention time.Duration
	// FeedPoll is how often the feed head is read from the store, which is
	// how a replica hears of events written by another; 100ms when zero.
	FeedPoll time.Duration
	// UsageFlush is how often last-used times are written; 30s when zero.
	UsageFlush time.Duration
	// KeyCountEvery is how often the keys are counted by state, for
	// metrics; DefaultKeyCountEvery when zero.
	KeyCountEvery time.Duration
	// VerifyFailureRate and VerifyFailureBurst bound failed verifies per
	// app (per verifier token); the defaults when zero.
	VerifyFailureRate  float64
	VerifyFailureBurst int
}

// Service is the key service's domain logic.
type Service struct {
	store       *store.Store
	keys        *keyring
	hasher      *apikey.Hasher
	now         func() time.Time
	log         *slog.Logger
	maxLifetime time.Duration
	retention   time.Duration
	feedPoll    time.Duration
	usageEvery  time.Duration
	countEvery  time.Duration
	keyCounts   keyCounts
	feed        *feedWatch
	usage       *usageTracker
	verifiers   *verifierCache
	throttle    *failureThrottle
	throttled   atomic.Int64
}

// New returns a Service. Call Run to start its background work.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("keyservice: no store")
	}
	kr, err := newKeyring(cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	hasher, err := apikey.NewHasher(1, map[int][]byte{1: kr.keyHash})
	if err != nil {
		return nil, err
	}
	s := &Service{
		store:       cfg.Store,
		keys:        kr,
		hasher:      hasher,
		now:         cfg.Now,
		log:         cfg.Logger,
		maxLifetime: cfg.MaxKeyLifetime,
		retention:   cfg.EventRetention,
		feedPoll:    cfg.FeedPoll,
		usageEvery:  cfg.UsageFlush,
		countEvery:  cfg.KeyCountEvery,
		feed:        newFeedWatch(),
		usage:       newUsageTracker(),
		verifiers:   newVerifierCache(),
		throttle:    newFailureThrottle(cfg.VerifyFailureRate, cfg.VerifyFailureBurst),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxLifetime <= 0 {
		s.maxLifetime = DefaultMaxKeyLifetime
	}
	if s.retention <= 0 {
		s.retention = 7 * 24 * time.Hour
	}
	if s.feedPoll <= 0 {
		s.feedPoll = 100 * time.Millisecond
	}
	if s.usageEvery <= 0 {
		s.usageEvery = 30 * time.Second
	}
	if s.countEvery <= 0 {
		s.countEvery = DefaultKeyCountEvery
	}
	return s, nil
}

// Run does the background work until ctx ends: it follows the feed head,
// flushes last-used times, counts keys by state, prunes old events and
// sweeps expired console sessions. It flushes once more before it returns.
//
// Following the feed head has a loop of its own: it is what wakes the
// sidecars' long-polls, so a revocation must never wait behind a slow
// flush (thousands of last-used updates on a busy PostgreSQL take a second)
// or a prune.
func (s *Service) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.housekeep(ctx)
	}()
	feedTick := time.NewTicker(s.feedPoll)
	defer feedTick.Stop()
	s.pollFeed(ctx)
	for {
		select {
		case <-ctx.Done():
			<-done
			return
		case <-feedTick.C:
			s.pollFeed(ctx)
		case <-s.feed.poked:
			s.pollFeed(ctx)
		}
	}
}

// housekeep flushes last-used times, counts keys by state, prunes old
// events and sweeps expired console sessions until ctx ends, then flushes
// once more.
func (s *Service) housekeep(ctx context.Context) {
	usageTick := time.NewTicker(s.usageEvery)
	countTick := time.NewTicker(s.countEvery)
	pruneTick := time.NewTicker(time.Hour)
	defer usageTick.Stop()
	defer countTick.Stop()
	defer pruneTick.Stop()
	s.refreshKeyCounts(ctx)
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			s.FlushUsage(flushCtx)
			cancel()
			return
		case <-usageTick.C:
			s.FlushUsage(ctx)
		case <-countTick.C:
			s.refreshKeyCounts(ctx)
		case <-pruneTick.C:
			if n, err := s.store.PruneEvents(ctx, s.now().Add(-s.retention)); err != nil {
				s.log.Warn("prune events", "err", err)
			} else if n > 0 {
				s.log.Info("pruned feed events", "count", n)
			}
			s.sweepConsoleSessions(ctx)
		}
	}
}

func (s *Service) pollFeed(ctx context.Context) {
	head, err := s.store.EventHead(ctx)
	if err != nil {
		return // readiness reports the store; waiting feeds simply time out
	}
	s.feed.advance(head)
}

// FlushUsage writes pending last-used times.
func (s *Service) FlushUsage(ctx context.Context) {
	pending := s.usage.take()
	if len(pending) == 0 {
		return
	}
	if err := s.store.TouchKeys(ctx, pending); err != nil {
		s.usage.restore(pending)
		s.log.Warn("write last-used times", "keys", len(pending), "err", err)
	}
}

// Ready reports whether the store answers.
func (s *Service) Ready(ctx context.Context) error { return s.store.Ping(ctx) }

// Caller is who is calling: the platform admin, a user of an organization, or
// an app's sidecar (holding its verifier token). A deleted app's verifier
// token still authenticates verify and events, so its sidecar hears
// app.deleted and its keys answer ORPHANED rather than the token failing.
type Caller struct {
	Admin bool
	User  *store.User
	App   *store.App
}

// Authenticate resolves a bearer token. Unknown tokens are KindUnauthorized
// with one message for every reason.
func (s *Service) Authenticate(ctx context.Context, token string) (Caller, error) {
	unauthorized := errorf(KindUnauthorized, "missing or invalid token")
	if token == "" || len(token) > maxTokenLen {
		return Caller{}, unauthorized
	}
	h := s.keys.hashToken(token)
	var err error
	switch {
	case strings.HasPrefix(token, adminTokenPrefix):
		var ok bool
		ok, err = s.store.IsAdmin(ctx, h)
		if err == nil && ok {
			return Caller{Admin: true}, nil
		}
	case strings.HasPrefix(token, userTokenPrefix):
		var u store.User
		u, err = s.store.UserByTokenHash(ctx, h)
		if err == nil {
			return Caller{User: &u}, nil
		}
	case strings.HasPrefix(token, verifierTokenPrefix):
		if a, ok := s.verifiers.get(h); ok {
			return Caller{App: &a}, nil
		}
		var a store.App
		a, err = s.store.AppByVerifierHash(ctx, h)
		if err == nil {
			s.verifiers.put(h, a)
			return Caller{App: &a}, nil
		}
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Caller{}, s.storeErr(err)
	}
	return Caller{}, unauthorized
}

// user returns the caller's user, or a 403 for admin and verifier tokens.
func (c Caller) user() (*store.User, error) {
	if c.User == nil {
		return nil, errorf(KindForbidden, "this call needs a user token")
	}
	return c.User, nil
}

func canManageUsers(role string) bool { return role == RoleOwner || role == RoleAuraOwner }

// CanRevokeOrphaned reports whether a role may revoke orphaned keys.
func CanRevokeOrphaned(role string) bool { return role == RoleOwner || role == RoleAuraOwner }

func newToken(prefix string) (string, error) {
	r, err := apikey.Random(tokenRandomLen)
	return prefix + r, err
}

func newID(prefix string) (string, error) {
	r, err := apikey.Random(20)
	return prefix + "_" + r, err
}

// storeErr turns a store error into a domain error.
func (s *Service) storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return &Error{Kind: KindNotFound, Message: "not found", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Kind: KindConflict, Message: "already exists", Err: err}
	case errors.Is(err, store.ErrCreatorGone):
		return &Error{Kind: KindUnauthorized, Message: "your user has been removed from the organization", Err: err}
	case errors.Is(err, store.ErrCursorExpired):
		return &Error{Kind: KindCursorExpired, Message: "the events cursor is older than the kept history; start again from the head", Err: err}
	case errors.Is(err, store.ErrCursorAhead):
		return &Error{Kind: KindCursorExpired, Message: "the events cursor is past the newest event (the key store went back in time); start again from the head", Err: err}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: KindUnavailable, Message: "the key store is unavailable; try again", Err: err}
	}
	return err
}

func checkName(what, name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", errorf(KindInvalid, "%s is required", what)
	case !utf8.ValidString(name):
		return "", errorf(KindInvalid, "%s must be valid UTF-8", what)
	case utf8.RuneCountInString(name) > MaxNameLen:
		return "", errorf(KindInvalid, "%s must be at most %d characters", what, MaxNameLen)
	case strings.ContainsFunc(name, unicode.IsControl):
		return "", errorf(KindInvalid, "%s must not contain control characters", what)
	}
	return name, nil
}

func checkEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return "", errorf(KindInvalid, "email is required")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > MaxEmailLen {
		return "", errorf(KindInvalid, "email %q is not a valid address", truncate(email, 64))
	}
	return strings.ToLower(email), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func checkRole(role string) error {
	switch role {
	case RoleOwner, RoleAuraOwner, RoleMember:
		return nil
	}
	return errorf(KindInvalid, "role must be owner, aura_owner or member")
}

// Bootstrap prepares an empty store: a platform admin and a first
// organization with its owner, in one transaction. Tokens left empty are
// generated; supplied ones must pass AdminToken.Check and OwnerToken.Check. persist saves the two tokens; it runs before the transaction
// commits, so a crash can never leave a bootstrapped store whose tokens
// nobody has. It returns created=false, and no tokens, when the store was
// not empty.
func (s *Service) Bootstrap(ctx context.Context, adminToken, ownerToken string, persist func(admin, owner string) error) (admin, owner string, created bool, err error) {
	empty, err := s.store.IsEmpty(ctx)
	if err != nil || !empty {
		return "", "", false, s.storeErr(err)
	}
	if adminToken == "" {
		if adminToken, err = AdminToken.New(); err != nil {
			return "", "", false, err
		}
	} else if err := AdminToken.Check(adminToken); err != nil {
		return "", "", false, fmt.Errorf("the admin token %w", err)
	}
	if ownerToken == "" {
		if ownerToken, err = OwnerToken.New(); err != nil {
			return "", "", false, err
		}
	} else if err := OwnerToken.Check(ownerToken); err != nil {
		return "", "", false, fmt.Errorf("the owner token %w", err)
	}
	orgID, err := newID("org")
	if err != nil {
		return "", "", false, err
	}
	userID, err := newID("usr")
	if err != nil {
		return "", "", false, err
	}
	now := s.now().UTC()
	org := store.Org{ID: orgID, Name: "Default", CreatedAt: now}
	ownerUser := store.User{ID: userID, OrgID: orgID, Email: "owner@appkeys.local", Role: RoleOwner, TokenHash: s.keys.hashToken(ownerToken), CreatedAt: now}
	created, err = s.store.Bootstrap(ctx, s.keys.hashToken(adminToken), org, ownerUser, func() error { return persist(adminToken, ownerToken) })
	if err != nil || !created {
		return "", "", false, s.storeErr(err)
	}
	return adminToken, ownerToken, true, nil
}

// OrgCreated is the answer to CreateOrg.
type OrgCreated struct {
	Org        store.Org
	Owner      store.User
	OwnerToken string
}

// CreateOrg creates an organization and its owner (platform admin only).
func (s *Service) CreateOrg(ctx context.Context, c Caller, name, ownerEmail string) (OrgCreated, error) {
	if !c.Admin {
		return OrgCreated{}, errorf(KindForbidden, "only the platform admin may create organizations")
	}
	name, err := checkName("name", name)
	if err != nil {
		return OrgCreated{}, err
	}
	email, err := checkEmail(ownerEmail)
	if err != nil {
		return OrgCreated{}, err
	}
	orgID, err := newID("org")
	if err != nil {
		return OrgCreated{}, err
	}
	userID, err := newID("usr")
	if err != nil {
		return OrgCreated{}, err
	}
	ownerToken, err := newToken(userTokenPrefix)
	if err != nil {
		return OrgCreated{}, err
	}
	now := s.now().UTC()
	org := store.Org{ID: orgID, Name: name, CreatedAt: now}
	owner := store.User{ID: userID, OrgID: orgID, Email: email, Role: RoleOwner, TokenHash: s.keys.hashToken(ownerToken), CreatedAt: now}
	if err := s.store.CreateOrg(ctx, org, owner, "admin"); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return OrgCreated{}, &Error{Kind: KindConflict, Message: fmt.Sprintf("an organization named %q already exists", name), Err: err}
		}
		return OrgCreated{}, s.storeErr(err)
	}
	return OrgCreated{Org: org, Owner: owner, OwnerToken: ownerToken}, nil
}

// Me returns the caller's user and organization.
func (s *Service) Me(ctx context.Context, c Caller) (store.User, store.Org, error) {
	u, err := c.user()
	if err != nil {
		return store.User{}, store.Org{}, err
	}
	org, err := s.store.GetOrg(ctx, u.OrgID)
	return *u, org, s.storeErr(err)
}

// CreateUser adds a user to the caller's organization and returns their
// token, shown once. Owners and aura owners may add users; only owners may
// add owners.
func (s *Service) CreateUser(ctx context.Context, c Caller, email, role string) (store.User, string, error) {
	u, err := c.user()
	if err != nil {
		return store.User{}, "", err
	}
	if !canManageUsers(u.Role) {
		return store.User{}, "", errorf(KindForbidden, "only an Organization Owner or Aura Owner may add users")
	}
	if err := checkRole(role); err != nil {
		return store.User{}, "", err
	}
	if role == RoleOwner && u.Role != RoleOwner {
		return store.User{}, "", errorf(KindForbidden, "only an Organization Owner may add another owner")
	}
	email, err = checkEmail(email)
	if err != nil {
		return store.User{}, "", err
	}
	id, err := newID("usr")
	if err != nil {
		return store.User{}, "", err
	}
	token, err := newToken(userTokenPrefix)
	if err != nil {
		return store.User{}, "", err
	}
	nu := store.User{ID: id, OrgID: u.OrgID, Email: email, Role: role, TokenHash: s.keys.hashToken(token), CreatedAt: s.now().UTC()}
	if err := s.store.CreateUser(ctx, nu, u.ID); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.User{}, "", &Error{Kind: KindConflict, Message: fmt.Sprintf("a user with email %q already exists", email), Err: err}
		}
		return store.User{}, "", s.storeErr(err)
	}
	return nu, token, nil
}

// ListUsers lists the caller's organization's users.
func (s *Service) ListUsers(ctx context.Context, c Caller) ([]store.User, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	users, err := s.store.ListUsers(ctx, u.OrgID)
	return users, s.storeErr(err)
}

// DeleteUser removes a user; the keys they created become orphaned.
func (s *Service) DeleteUser(ctx context.Context, c Caller, id string) error {
	u, err := c.user()
	if err != nil {
		return err
	}
	if !canManageUsers(u.Role) {
		return errorf(KindForbidden, "only an Organization Owner or Aura Owner may remove users")
	}
	if id == u.ID {
		return errorf(KindConflict, "you cannot remove yourself")
	}
	target, err := s.store.GetUser(ctx, u.OrgID, id)
	if err != nil {
		return s.notFound(err, "user %s not found", id)
	}
	if target.Role == RoleOwner && u.Role != RoleOwner {
		return errorf(KindForbidden, "only an Organization Owner may remove an owner")
	}
	_, err = s.store.DeleteUser(ctx, u.OrgID, id, u.ID, s.now().UTC())
	if err == nil {
		s.feed.poke()
	}
	return s.notFound(err, "user %s not found", id)
}

// notFound renders ErrNotFound with a message naming what was not found.
func (s *Service) notFound(err error, format string, args ...any) error {
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Kind: KindNotFound, Message: fmt.Sprintf(format, args...), Err: err}
	}
	return s.storeErr(err)
}

// AppCreated is the answer to CreateApp: the app and its verifier token,
// shown once.
type AppCreated struct {
	App           store.App
	VerifierToken string
}

// CreateApp creates an app in the caller's organization.
func (s *Service) CreateApp(ctx context.Context, c Caller, name, kind string) (AppCreated, error) {
	u, err := c.user()
	if err != nil {
		return AppCreated{}, err
	}
	if name, err = checkName("name", name); err != nil {
		return AppCreated{}, err
	}
	if kind != KindCloudFunction && kind != KindDashboardApp {
		return AppCreated{}, errorf(KindInvalid, "kind must be cloud_function or dashboard_app")
	}
	id, err := newID("app")
	if err != nil {
		return AppCreated{}, err
	}
	token, err := newToken(verifierTokenPrefix)
	if err != nil {
		return AppCreated{}, err
	}
	a := store.App{ID: id, OrgID: u.OrgID, Name: name, Kind: kind, VerifierHash: s.keys.hashToken(token), CreatedAt: s.now().UTC(), CreatedBy: u.ID}
	if err := s.store.CreateApp(ctx, a); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return AppCreated{}, &Error{Kind: KindConflict, Message: fmt.Sprintf("an app named %q already exists", name), Err: err}
		}
		return AppCreated{}, s.storeErr(err)
	}
	return AppCreated{App: a, VerifierToken: token}, nil
}

// ListApps lists the caller's organization's apps with key counts.
func (s *Service) ListApps(ctx context.Context, c Caller) ([]store.App, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	apps, err := s.store.ListApps(ctx, u.OrgID, s.now())
	return apps, s.storeErr(err)
}

// GetApp returns one app of the caller's organization.
func (s *Service) GetApp(ctx context.Context, c Caller, id string) (store.App, error) {
	u, err := c.user()
	if err != nil {
		return store.App{}, err
	}
	a, err := s.store.GetApp(ctx, u.OrgID, id, s.now())
	return a, s.notFound(err, "app %s not found", id)
}

// DeleteApp deletes an app; its keys become orphaned.
func (s *Service) DeleteApp(ctx context.Context, c Caller, id string) error {
	u, err := c.user()
	if err != nil {
		return err
	}
	_, err = s.store.DeleteApp(ctx, u.OrgID, id, u.ID, s.now().UTC())
	if err == nil {
		s.verifiers.forgetApp(id)
		s.feed.poke()
	}
	return s.notFound(err, "app %s not found", id)
}

// CreateKeyRequest asks for a new key.
type CreateKeyRequest struct {
	Name      string
	ExpiresAt time.Time
	// SaveAsSecret, when set, names a new secret that receives the key
	// instead of the answer.
	SaveAsSecret string
}

// KeyCreated is the answer to CreateKey. Plain is the key itself, set only
// when it was not saved as a secret; it is never available again.
type KeyCreated struct {
	Key        store.Key
	Plain      string
	SecretName string
}

// CreateKey creates a key for an app of the caller's organization.
func (s *Service) CreateKey(ctx context.Context, c Caller, appID string, req CreateKeyRequest) (KeyCreated, error) {
	u, err := c.user()
	if err != nil {
		return KeyCreated{}, err
	}
	name, err := checkName("name", req.Name)
	if err != nil {
		return KeyCreated{}, err
	}
	now := s.now().UTC()
	switch {
	case req.ExpiresAt.IsZero():
		return KeyCreated{}, errorf(KindInvalid, "expires_at is required")
	case !req.ExpiresAt.After(now):
		return KeyCreated{}, errorf(KindInvalid, "expires_at must be in the future")
	case req.ExpiresAt.After(now.Add(s.maxLifetime + expiryGrace)):
		return KeyCreated{}, errorf(KindInvalid, "expires_at may be at most %d days from now", int(s.maxLifetime.Hours()/24))
	}
	if req.SaveAsSecret != "" && !validSecretName(req.SaveAsSecret) {
		return KeyCreated{}, errorf(KindInvalid, secretNameRule)
	}
	app, err := s.store.LiveApp(ctx, u.OrgID, appID)
	if err != nil {
		return KeyCreated{}, s.notFound(err, "app %s not found", appID)
	}
	plain, err := apikey.Generate()
	if err != nil {
		return KeyCreated{}, err
	}
	id, err := newID("key")
	if err != nil {
		return KeyCreated{}, err
	}
	k := store.Key{
		ID: id, OrgID: u.OrgID, AppID: app.ID, AppName: app.Name, Name: name, Prefix: apikey.DisplayPrefix(plain),
		Hash: s.hasher.Hash(plain).String(), ExpiresAt: req.ExpiresAt.UTC().Truncate(time.Microsecond), CreatedAt: now,
		CreatedBy: u.ID, CreatorEmail: u.Email,
	}
	var secret *store.Secret
	if req.SaveAsSecret != "" {
		sealed, err := s.keys.seal(u.OrgID, req.SaveAsSecret, []byte(plain))
		if err != nil {
			return KeyCreated{}, err
		}
		secret = &store.Secret{OrgID: u.OrgID, Name: req.SaveAsSecret, Ciphertext: sealed, CreatedAt: now, CreatedBy: u.ID}
	}
	if err := s.store.CreateKey(ctx, k, secret); err != nil {
		switch {
		case errors.Is(err, store.ErrSecretConflict):
			return KeyCreated{}, &Error{Kind: KindConflict, Message: fmt.Sprintf("a secret named %q already exists", req.SaveAsSecret), Err: err}
		case errors.Is(err, store.ErrConflict):
			return KeyCreated{}, &Error{Kind: KindConflict, Message: fmt.Sprintf("app %s already has a key named %q", app.ID, name), Err: err}
		}
		return KeyCreated{}, s.notFound(err, "app %s not found", appID)
	}
	out := KeyCreated{Key: k}
	if secret != nil {
		out.SecretName = secret.Name
	} else {
		out.Plain = plain
	}
	return out, nil
}

// ListKeys lists the caller's organization's keys, of one app when appID is
// set, in one state when state is set ("active", "orphaned" or "expired").
func (s *Service) ListKeys(ctx context.Context, c Caller, appID, state string) ([]store.Key, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	switch state {
	case "", StateActive, StateOrphaned, StateExpired:
	default:
		return nil, errorf(KindInvalid, "state must be active, orphaned or expired")
	}
	if appID != "" {
		// An app deleted since still lists its orphaned keys; only an app
		// that never was in this organization is unknown.
		keys, err := s.store.ListKeys(ctx, store.KeyFilter{OrgID: u.OrgID, AppID: appID, State: state, Now: s.now()})
		if err != nil {
			return nil, s.storeErr(err)
		}
		if len(keys) == 0 {
			if _, err := s.store.GetApp(ctx, u.OrgID, appID, s.now()); err != nil {
				return nil, s.notFound(err, "app %s not found", appID)
			}
		}
		return s.usage.overlay(keys), nil
	}
	keys, err := s.store.ListKeys(ctx, store.KeyFilter{OrgID: u.OrgID, State: state, Now: s.now()})
	return s.usage.overlay(keys), s.storeErr(err)
}

// KeyState returns the state a key is in at now.
func KeyState(k store.Key, now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return StateRevoked
	case k.OrphanedAt != nil:
		return StateOrphaned
	case !k.ExpiresAt.After(now):
		return StateExpired
	}
	return StateActive
}

// Now returns the service's clock reading.
func (s *Service) Now() time.Time { return s.now() }

// RevokeKey revokes a key of the caller's organization. Orphaned keys may be
// revoked only by an Organization Owner or Aura Owner.
func (s *Service) RevokeKey(ctx context.Context, c Caller, id string) error {
	u, err := c.user()
	if err != nil {
		return err
	}
	_, err = s.store.RevokeKey(ctx, u.OrgID, id, u.ID, CanRevokeOrphaned(u.Role), s.now().UTC())
	switch {
	case err == nil:
		s.feed.poke()
		return nil
	case errors.Is(err, store.ErrOrphaned):
		return &Error{Kind: KindForbidden, Message: "only an Organization Owner or Aura Owner may revoke an orphaned key", Err: err}
	}
	return s.notFound(err, "key %s not found", id)
}

// CreateSecret stores a secret value, encrypted, in the caller's organization.
func (s *Service) CreateSecret(ctx context.Context, c Caller, name, value string) (store.Secret, error) {
	u, err := c.user()
	if err != nil {
		return store.Secret{}, err
	}
	if !validSecretName(name) {
		return store.Secret{}, errorf(KindInvalid, secretNameRule)
	}
	if value == "" {
		return store.Secret{}, errorf(KindInvalid, "value is required")
	}
	if len(value) > MaxSecretValueLen {
		return store.Secret{}, errorf(KindInvalid, "value must be at most %d bytes", MaxSecretValueLen)
	}
	sealed, err := s.keys.seal(u.OrgID, name, []byte(value))
	if err != nil {
		return store.Secret{}, err
	}
	sec := store.Secret{OrgID: u.OrgID, Name: name, Ciphertext: sealed, CreatedAt: s.now().UTC(), CreatedBy: u.ID}
	if err := s.store.CreateSecret(ctx, sec); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Secret{}, &Error{Kind: KindConflict, Message: fmt.Sprintf("a secret named %q already exists", name), Err: err}
		}
		return store.Secret{}, s.storeErr(err)
	}
	sec.Ciphertext = nil
	return sec, nil
}

// ListSecrets lists the names of the caller's organization's secrets.
func (s *Service) ListSecrets(ctx context.Context, c Caller) ([]store.Secret, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	secs, err := s.store.ListSecrets(ctx, u.OrgID)
	return secs, s.storeErr(err)
}

// ReadSecret returns a secret's value; the access is audited.
func (s *Service) ReadSecret(ctx context.Context, c Caller, name string) (store.Secret, string, error) {
	u, err := c.user()
	if err != nil {
		return store.Secret{}, "", err
	}
	sec, err := s.store.ReadSecret(ctx, u.OrgID, name, u.ID, s.now().UTC())
	if err != nil {
		return store.Secret{}, "", s.notFound(err, "secret %q not found", truncate(name, 128))
	}
	v, err := s.keys.open(sec.OrgID, sec.Name, sec.Ciphertext)
	if err != nil {
		return store.Secret{}, "", err
	}
	sec.Ciphertext = nil
	return sec, string(v), nil
}

// DeleteSecret deletes a secret.
func (s *Service) DeleteSecret(ctx context.Context, c Caller, name string) error {
	u, err := c.user()
	if err != nil {
		return err
	}
	return s.notFound(s.store.DeleteSecret(ctx, u.OrgID, name, u.ID, s.now().UTC()), "secret %q not found", truncate(name, 128))
}

// ListAudit returns the newest audit records of the caller's organization
// (owners and aura owners).
func (s *Service) ListAudit(ctx context.Context, c Caller, limit int) ([]store.Audit, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	if !canManageUsers(u.Role) {
		return nil, errorf(KindForbidden, "only an Organization Owner or Aura Owner may read the audit log")
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	recs, err := s.store.ListAudit(ctx, u.OrgID, limit)
	return recs, s.storeErr(err)
}
