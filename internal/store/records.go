package store

import "time"

// Org is an organization.
type Org struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// User is a member of an organization. TokenHash and TokenPrefix describe
// the user's first token (the keyed hash and the display prefix), which
// creating the user stores among their tokens (UserToken) as "initial";
// reads leave them empty. The token itself is never stored.
type User struct {
	ID          string
	OrgID       string
	Email       string
	Role        string
	TokenHash   string
	TokenPrefix string
	CreatedAt   time.Time
	DeletedAt   *time.Time
}

// App is a Container App. VerifierHash and VerifierPrefix describe its
// first verifier token, which creating the app stores as its current
// VerifierToken; reads leave them empty. ActiveKeys and OrphanedKeys are
// filled by ListApps and GetApp.
type App struct {
	ID             string
	OrgID          string
	Name           string
	Kind           string
	VerifierHash   string
	VerifierPrefix string
	CreatedAt      time.Time
	CreatedBy      string
	DeletedAt      *time.Time
	ActiveKeys     int
	OrphanedKeys   int
}

// VerifierToken is one of an app's verifier tokens: its keyed hash and
// display prefix, never the token. ExpiresAt is nil for the app's current
// token and set for the previous one, counting down its overlap.
type VerifierToken struct {
	ID         string
	AppID      string
	OrgID      string
	Hash       string
	Prefix     string
	CreatedAt  time.Time
	CreatedBy  string
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
}

// UserToken is one of a user's API tokens: its keyed hash and display
// prefix, never the token. ExpiresAt is nil for a token that does not
// expire.
type UserToken struct {
	ID        string
	UserID    string
	OrgID     string
	Name      string
	Hash      string
	Prefix    string
	CreatedAt time.Time
	ExpiresAt *time.Time
}

// Key is an API key's record. Hash is the versioned keyed hash ("v1:…");
// the key itself is never stored.
type Key struct {
	ID           string
	OrgID        string
	AppID        string
	AppName      string // filled by reads that join the app
	Name         string
	Prefix       string
	Hash         string
	ExpiresAt    time.Time
	CreatedAt    time.Time
	CreatedBy    string
	CreatorEmail string // filled by reads that join the creator
	RevokedAt    *time.Time
	OrphanedAt   *time.Time
	OrphanReason string // "", "app_deleted" or "creator_deleted"
	LastUsedAt   *time.Time
	RolledFrom   string // the key this one was rolled from; "" when none
	RolledTo     string // the key this one was rolled to; "" when none
	// LeakedAt is when a leak of the key was first reported; nil if never.
	LeakedAt *time.Time
	// RevokeReason is RevokeLeaked for a key revoked by a leak report, ""
	// otherwise.
	RevokeReason string
	// Limits are what the sidecars enforce for the key; the zero value
	// limits nothing.
	Limits Limits
}

// Limits are a key's restrictions, checked by the key service before they
// are stored: the store keeps them as given.
type Limits struct {
	// RateLimit is nil when the key has none.
	RateLimit *RateLimit
	// AllowedCIDRs are client networks in canonical CIDR form; empty
	// means any network.
	AllowedCIDRs []string
}

// RateLimit is Requests per Per (a second, a minute or an hour).
type RateLimit struct {
	Requests int
	Per      time.Duration
}

// RevokeLeaked is the RevokeReason of a key revoked by a leak report.
const RevokeLeaked = "leaked"

// Secret is an entry of the Secrets store; Ciphertext is sealed by the caller.
type Secret struct {
	OrgID      string
	Name       string
	Ciphertext []byte
	CreatedAt  time.Time
	CreatedBy  string
	// KeyID is the key the secret holds, when it was saved from one (Save
	// As Secret, a roll); "" for a value set by hand.
	KeyID string
	// UpdatedAt is when the value last changed (a roll of its key); nil
	// when it never changed since created.
	UpdatedAt *time.Time
}

// Event is an entry of the change feed.
type Event struct {
	Seq   int64
	OrgID string
	AppID string
	Type  string // "key.revoked", "key.orphaned", "key.expiry_changed", "key.updated" or "app.deleted"
	KeyID string
	At    time.Time
	// ExpiresAt is a key.expiry_changed event's new expiry; nil otherwise.
	ExpiresAt *time.Time
}

// Event types.
const (
	EventKeyRevoked  = "key.revoked"
	EventKeyOrphaned = "key.orphaned"
	EventAppDeleted  = "app.deleted"
	// EventKeyExpiryChanged: a key now expires sooner (it was rolled).
	EventKeyExpiryChanged = "key.expiry_changed"
	// EventKeyUpdated: a key's limits changed; sidecars drop what they
	// cached of it and ask again.
	EventKeyUpdated = "key.updated"
)

// Orphan reasons.
const (
	OrphanAppDeleted     = "app_deleted"
	OrphanCreatorDeleted = "creator_deleted"
)

// Audit is an audit record.
type Audit struct {
	ID     int64
	OrgID  string
	At     time.Time
	Actor  string // a user id, "admin" or "system"
	Action string // e.g. "key.create", "secret.read"
	Target string // the id or name acted on
	Detail string
}

// Audit actions of the web console. The others are named where they are
// written (orgs.go, users.go, apps.go, keys.go, secrets.go).
const (
	AuditConsoleLogin  = "console.login"
	AuditConsoleLogout = "console.logout"
)

// KeyFilter selects keys in ListKeys. Empty fields select everything;
// revoked keys are never listed.
type KeyFilter struct {
	OrgID string
	AppID string
	// Select narrows the keys by the columns a key's state is made of; Now
	// decides expiry.
	Select KeySelect
	Now    time.Time
	// ExpiresBy, when set, keeps only keys that expire at or before it
	// (whatever Select says of the rest) and were not rolled away.
	ExpiresBy time.Time
	// Leaked, when set, keeps only the keys reported leaked (true) or
	// only those never reported (false).
	Leaked *bool
}

// KeySelect narrows ListKeys. It names columns, not states: which states
// there are, and what they are called, is the key service's to say.
type KeySelect int

// The selections of ListKeys.
const (
	AnyKey        KeySelect = iota // every key not revoked
	UnexpiredKeys                  // not orphaned, expiring after Now
	ExpiredKeys                    // not orphaned, expired at Now
	OrphanedKeys                   // orphaned, expired or not
)

// KeyCounts counts the keys that are not revoked, as CountKeys selects
// them.
type KeyCounts struct {
	Unexpired, Expired, Orphaned int
	// Expiring counts the unexpired keys that expire at or before the
	// expiringBy CountKeys was given and were not rolled away: a subset
	// of Unexpired.
	Expiring int
}

// ConsoleSession is a web console session's row. ID is the SHA-256 (hex) of
// the session cookie, never the cookie. The row holds nothing secret: the
// session acts as the live user UserID names (no token is kept), and Flash
// is a one-time notice for its next page ("Revoked API key “ci”.").
type ConsoleSession struct {
	ID     string
	UserID string
	// TokenID is the user token the session was started with: revoking
	// it ends the session. Empty for sessions older than user tokens.
	TokenID   string
	Flash     string
	CreatedAt time.Time
	ExpiresAt time.Time
}
