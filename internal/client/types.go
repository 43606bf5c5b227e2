package client

// The types here repeat the JSON shapes of internal/httpapi's answers on
// purpose: this package is what other programs import, so it depends on
// the API alone, never on the key service's own packages. api/openapi.yaml
// is the contract both sides are tested against (./api checks the server's
// real answers; the client tests decode them).

import (
	"encoding/json"
	"fmt"
	"time"
)

// Role is a user's role inside an organization.
type Role string

// The roles of DESIGN.md's permission table.
const (
	RoleOwner     Role = "owner"
	RoleAuraOwner Role = "aura_owner"
	RoleMember    Role = "member"
)

// AppKind is the kind of Container App a key protects.
type AppKind string

// The two kinds of app.
const (
	KindCloudFunction AppKind = "cloud_function"
	KindDashboardApp  AppKind = "dashboard_app"
)

// KeyState is where a key is in its life. Revoked keys are never listed.
type KeyState string

// The states a listed key can be in. StateAny lists every non-revoked key.
const (
	StateAny      KeyState = ""
	StateActive   KeyState = "active"
	StateOrphaned KeyState = "orphaned"
	StateExpired  KeyState = "expired"
	// StateRevoked is never listed; a roll without overlap answers it as
	// the previous key's state, and LookupKey finds a revoked key.
	StateRevoked KeyState = "revoked"
)

// OrphanReason says why a key was orphaned. The empty reason is a key that is
// not orphaned; it travels as JSON null, as the API sends it.
type OrphanReason string

// The two ways a key becomes orphaned.
const (
	OrphanAppDeleted     OrphanReason = "app_deleted"
	OrphanCreatorDeleted OrphanReason = "creator_deleted"
)

// MarshalJSON writes the empty reason as null, the API's form.
func (r OrphanReason) MarshalJSON() ([]byte, error) {
	if r == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(r))
}

// UnmarshalJSON reads null as the empty reason.
func (r *OrphanReason) UnmarshalJSON(b []byte) error {
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*r = ""
	if s != nil {
		*r = OrphanReason(*s)
	}
	return nil
}

// VerifyCode is the verdict of POST /v1/verify.
type VerifyCode string

// Every verdict a verify can give; only VerifyValid authenticates.
const (
	VerifyValid     VerifyCode = "VALID"
	VerifyMalformed VerifyCode = "MALFORMED"
	VerifyNotFound  VerifyCode = "NOT_FOUND"
	VerifyExpired   VerifyCode = "EXPIRED"
	VerifyRevoked   VerifyCode = "REVOKED"
	VerifyOrphaned  VerifyCode = "ORPHANED"
	VerifyWrongApp  VerifyCode = "WRONG_APP"
)

// EventType names a change on the events feed.
type EventType string

// The changes a sidecar must react to.
const (
	EventKeyRevoked  EventType = "key.revoked"
	EventKeyOrphaned EventType = "key.orphaned"
	EventAppDeleted  EventType = "app.deleted"
	// EventKeyExpiryChanged says a key now expires sooner (it was rolled):
	// the event's ExpiresAt is its new expiry.
	EventKeyExpiryChanged EventType = "key.expiry_changed"
	// EventKeyUpdated says a key's limits changed: a sidecar drops what it
	// cached of the key and asks again.
	EventKeyUpdated EventType = "key.updated"
)

// CreateOrgRequest is the body of POST /v1/orgs.
type CreateOrgRequest struct {
	Name       string `json:"name"`
	OwnerEmail string `json:"owner_email"`
}

// CreatedOrg answers POST /v1/orgs: the organization and its first owner,
// whose token is shown this once.
type CreatedOrg struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Owner     OrgOwner  `json:"owner"`
}

// OrgOwner is the owner made with a new organization.
type OrgOwner struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	Token     string    `json:"token"`
}

// CreateUserRequest is the body of POST /v1/users.
type CreateUserRequest struct {
	Email string `json:"email"`
	Role  Role   `json:"role"`
}

// User is a member of the caller's organization.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// CreatedUser answers POST /v1/users; Token is shown this once.
type CreatedUser struct {
	User
	Token string `json:"token"`
}

// Me answers GET /v1/me: who the token belongs to.
type Me struct {
	ID      string `json:"id"`
	Email   string `json:"email"`
	Role    Role   `json:"role"`
	OrgID   string `json:"org_id"`
	OrgName string `json:"org_name"`
}

// CreateAppRequest is the body of POST /v1/apps.
type CreateAppRequest struct {
	Name string  `json:"name"`
	Kind AppKind `json:"kind"`
}

// App is a Container App with the counts of its live keys.
type App struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Kind         AppKind   `json:"kind"`
	CreatedAt    time.Time `json:"created_at"`
	CreatedBy    string    `json:"created_by"`
	ActiveKeys   int       `json:"active_keys"`
	OrphanedKeys int       `json:"orphaned_keys"`
}

// CreatedApp answers POST /v1/apps. VerifierToken is what the app's sidecar
// authenticates with; it is shown this once.
type CreatedApp struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Kind          AppKind   `json:"kind"`
	CreatedAt     time.Time `json:"created_at"`
	CreatedBy     string    `json:"created_by"`
	VerifierToken string    `json:"verifier_token"`
}

// CreateKeyRequest is the body of POST /v1/apps/{id}/keys. When SaveAsSecret
// names a secret, the key is stored there and not returned.
type CreateKeyRequest struct {
	Name         string    `json:"name"`
	ExpiresAt    time.Time `json:"expires_at"`
	SaveAsSecret string    `json:"save_as_secret,omitempty"`
	// RateLimit and AllowedCIDRs, optional, are the key's limits.
	RateLimit    *RateLimit `json:"rate_limit,omitempty"`
	AllowedCIDRs []string   `json:"allowed_cidrs,omitempty"`
}

// RateLimit is a key's rate limit: Requests per Per ("1s", "1m" or "1h"),
// with a burst of Requests, enforced by each sidecar.
type RateLimit struct {
	Requests int    `json:"requests"`
	Per      string `json:"per"`
}

// String spells the limit as the command line takes it: 5/1s.
func (r *RateLimit) String() string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("%d/%s", r.Requests, r.Per)
}

// UpdateKeyRequest changes a key's limits. A nil field is left as it is;
// to remove a limit, set its Clear flag.
type UpdateKeyRequest struct {
	RateLimit         *RateLimit
	ClearRateLimit    bool
	AllowedCIDRs      []string
	ClearAllowedCIDRs bool
}

// MarshalJSON writes only the fields that change; a cleared one is null.
func (u UpdateKeyRequest) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	switch {
	case u.ClearRateLimit:
		m["rate_limit"] = nil
	case u.RateLimit != nil:
		m["rate_limit"] = u.RateLimit
	}
	switch {
	case u.ClearAllowedCIDRs:
		m["allowed_cidrs"] = nil
	case u.AllowedCIDRs != nil:
		m["allowed_cidrs"] = u.AllowedCIDRs
	}
	return json.Marshal(m)
}

// Key is an API key as listed: never the key itself, only its display prefix.
type Key struct {
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	AppID        string       `json:"app_id"`
	AppName      string       `json:"app_name"`
	Prefix       string       `json:"prefix"`
	State        KeyState     `json:"state"`
	OrphanReason OrphanReason `json:"orphan_reason"`
	ExpiresAt    time.Time    `json:"expires_at"`
	CreatedAt    time.Time    `json:"created_at"`
	CreatedBy    string       `json:"created_by"`
	// CreatedByEmail is the creator's e-mail, for display.
	CreatedByEmail string     `json:"created_by_email,omitempty"`
	LastUsedAt     *time.Time `json:"last_used_at"`
	// RolledFrom is the key this one was rolled from, RolledTo the key it
	// was rolled to; empty when none.
	RolledFrom string `json:"rolled_from,omitempty"`
	RolledTo   string `json:"rolled_to,omitempty"`
	// LeakedAt is when a leak of the key was first reported (GitHub secret
	// scanning); nil if never.
	LeakedAt *time.Time `json:"leaked_at"`
	// RevokedAt and RevokeReason (RevokeLeaked, or empty for a revoke by
	// a user) are set for a revoked key, which only LookupKey answers.
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	// RateLimit is nil and AllowedCIDRs empty when the key has none.
	RateLimit    *RateLimit `json:"rate_limit"`
	AllowedCIDRs []string   `json:"allowed_cidrs"`
}

// RevokeLeaked is the RevokeReason of a key revoked by a leak report.
const RevokeLeaked = "leaked"

// KeyQuery selects keys in ListKeysWhere; empty fields select every key
// that is not revoked.
type KeyQuery struct {
	// AppID, when set, lists that app's keys only.
	AppID string
	State KeyState
	// Leaked, when set, keeps only keys reported leaked (true) or only
	// keys never reported (false).
	Leaked *bool
	// ExpiringWithin, when set, keeps only the active keys that expire
	// within it from now (see keys list --expiring-within).
	ExpiringWithin time.Duration
}

// CreatedKey answers POST /v1/apps/{id}/keys. Exactly one of PlainKey (the
// key, shown this once) and SecretName (where it was saved instead) is set.
type CreatedKey struct {
	Key
	PlainKey   string `json:"key,omitempty"`
	SecretName string `json:"secret_name,omitempty"`
}

// RollKeyRequest is the body of POST /v1/keys/{id}/roll. Overlap is how
// long the old key keeps working (never past its own expiry), as a
// duration such as "24h" or "7d"; "0s" revokes it at once. When
// SaveAsSecret names a secret, the new key is stored there.
type RollKeyRequest struct {
	ExpiresAt    time.Time `json:"expires_at"`
	Overlap      string    `json:"overlap"`
	SaveAsSecret string    `json:"save_as_secret,omitempty"`
}

// RolledKey answers POST /v1/keys/{id}/roll: the new key, and the old one's
// new expiry. PlainKey is the new key, shown this once, unless it went to
// secrets (the one the roll named, and those that held the old key):
// Secrets names them.
type RolledKey struct {
	Key
	PlainKey string      `json:"key,omitempty"`
	Secrets  []string    `json:"secrets,omitempty"`
	Previous PreviousKey `json:"previous"`
}

// PreviousKey is the rolled key after the roll: it works until ExpiresAt,
// unless State is revoked (a roll without overlap).
type PreviousKey struct {
	ID        string    `json:"id"`
	State     KeyState  `json:"state"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateSecretRequest is the body of POST /v1/secrets.
type CreateSecretRequest struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Secret is a stored secret without its value, as listed.
type Secret struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// SecretValue answers GET /v1/secrets/{name}.
type SecretValue struct {
	Name      string    `json:"name"`
	Value     string    `json:"value"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// VerifyResult answers POST /v1/verify. For a key the service does not know,
// only Valid and Code are meaningful.
type VerifyResult struct {
	Valid     bool       `json:"valid"`
	Code      VerifyCode `json:"code"`
	KeyID     string     `json:"key_id,omitempty"`
	KeyName   string     `json:"key_name,omitempty"`
	AppID     string     `json:"app_id,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// RateLimit and AllowedCIDRs are sent with a valid key that has them.
	RateLimit    *RateLimit `json:"rate_limit,omitempty"`
	AllowedCIDRs []string   `json:"allowed_cidrs,omitempty"`
}

// Event is one change on an app's events feed.
type Event struct {
	Seq   int64     `json:"seq"`
	Type  EventType `json:"type"`
	KeyID string    `json:"key_id,omitempty"`
	AppID string    `json:"app_id"`
	At    time.Time `json:"at"`
	// ExpiresAt is a key.expiry_changed event's new expiry.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// EventPage answers GET /v1/events. Next is the cursor to pass as after in
// the following call.
type EventPage struct {
	Events []Event `json:"events"`
	Next   int64   `json:"next"`
}

// AuditRecord is one entry of the organization's audit log.
type AuditRecord struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"` // a user id, "admin" or "system"
	Action string    `json:"action"`
	Target string    `json:"target"` // the id or name acted on
	Detail string    `json:"detail"`
}
