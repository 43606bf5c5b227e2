package keyservice

import (
	"context"
	"regexp"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

var secretNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// validSecretName reports whether name may name a secret. "." and ".."
// match the alphabet but not a URL path segment: /v1/secrets/.. would be
// cleaned to another path, so such a secret could never be read or deleted.
func validSecretName(name string) bool {
	return secretNameRE.MatchString(name) && name != "." && name != ".."
}

const secretNameRule = "secret name must be 1 to 128 letters, digits, '_', '.' or '-', and not '.' or '..'"

// SecretInfo is what may be shown of a secret without reading it: its
// name and who made it when. The value comes only from ReadSecret, which
// is audited.
type SecretInfo struct {
	Name      string
	CreatedAt time.Time
	CreatedBy string
	// UpdatedAt is when the value last changed (a roll of the key it
	// holds); nil when never. KeyID is the key it holds, when it was saved
	// from one (Save As Secret, a roll); "" for a value set by hand. Both
	// are filled by ListSecrets.
	UpdatedAt *time.Time
	KeyID     string
}

func secretInfoOf(s store.Secret) SecretInfo {
	return SecretInfo{Name: s.Name, CreatedAt: s.CreatedAt, CreatedBy: s.CreatedBy, UpdatedAt: s.UpdatedAt, KeyID: s.KeyID}
}

// CreateSecret stores a secret value, encrypted, in the caller's organization.
func (s *Service) CreateSecret(ctx context.Context, c Caller, name, value string) (SecretInfo, error) {
	return s.createSecret(ctx, c, name, value, "")
}

// createSecret is CreateSecret for a value that is the key keyID, when set:
// a roll of that key gives the secret the new key.
func (s *Service) createSecret(ctx context.Context, c Caller, name, value, keyID string) (SecretInfo, error) {
	u, err := c.user()
	if err != nil {
		return SecretInfo{}, err
	}
	if !validSecretName(name) {
		return SecretInfo{}, errorf(KindInvalid, secretNameRule)
	}
	if value == "" {
		return SecretInfo{}, errorf(KindInvalid, "value is required")
	}
	if len(value) > MaxSecretValueLen {
		return SecretInfo{}, errorf(KindInvalid, "value must be at most %d bytes", MaxSecretValueLen)
	}
	sealed, err := s.keys.seal(u.OrgID, name, []byte(value))
	if err != nil {
		return SecretInfo{}, err
	}
	sec := store.Secret{OrgID: u.OrgID, Name: name, Ciphertext: sealed, CreatedAt: s.now().UTC(), CreatedBy: u.ID, KeyID: keyID}
	if err := s.store.CreateSecret(ctx, sec); err != nil {
		return SecretInfo{}, s.conflict(err, "a secret named %q already exists", name)
	}
	return secretInfoOf(sec), nil
}

// ListSecrets lists the names of the caller's organization's secrets.
func (s *Service) ListSecrets(ctx context.Context, c Caller) ([]SecretInfo, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	secs, err := s.store.ListSecrets(ctx, u.OrgID)
	if err != nil {
		return nil, s.storeErr(err)
	}
	return each(secs, secretInfoOf), nil
}

// ReadSecret returns a secret's value; the access is audited.
func (s *Service) ReadSecret(ctx context.Context, c Caller, name string) (SecretInfo, string, error) {
	u, err := c.user()
	if err != nil {
		return SecretInfo{}, "", err
	}
	sec, err := s.store.ReadSecret(ctx, u.OrgID, name, u.ID, s.now().UTC())
	if err != nil {
		return SecretInfo{}, "", s.notFound(err, "secret %q not found", truncate(name, 128))
	}
	v, err := s.keys.open(sec.OrgID, sec.Name, sec.Ciphertext)
	if err != nil {
		return SecretInfo{}, "", err
	}
	return secretInfoOf(sec), string(v), nil
}

// DeleteSecret deletes a secret.
func (s *Service) DeleteSecret(ctx context.Context, c Caller, name string) error {
	u, err := c.user()
	if err != nil {
		return err
	}
	return s.notFound(s.store.DeleteSecret(ctx, u.OrgID, name, u.ID, s.now().UTC()), "secret %q not found", truncate(name, 128))
}
