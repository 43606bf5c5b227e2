package keyservice

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// A key created in the console is shown once, in the page that answers the
// create, and kept nowhere on the server: not in the session's row, not in
// memory. For Save As Secret that page also carries the key in a hidden
// form field, sealed (AES-256-GCM under a key of its own derived from the
// master key) with the session's row id, the flow id and an expiry as
// additional data. The seal hides nothing from the user, whose page shows
// the key anyway; it proves, when the form comes back, that the value is
// the key this session created in this flow, recently, and not a value a
// forged or altered form slipped in. A form replayed within its time can at
// worst save the same key a second time, under another name (or be told
// the name is taken): acceptable, as the key is the user's own and the
// replay needs their session and CSRF token.

// NewKeySaveWindow is how long a key just created in the console can be
// saved as a secret.
const NewKeySaveWindow = 5 * time.Minute

// maxSealedNewKeyLen bounds what is decoded: a sealed key is some 300
// characters with the longest names.
const maxSealedNewKeyLen = 4096

// maxFlowLen bounds the flow id, which is bound in as it comes.
const maxFlowLen = 128

// NewKey is a key just created in the console, as its page carries it.
// KeyID is recorded with the secret it is saved in, so that a roll of the
// key updates that secret.
type NewKey struct {
	Plain   string `json:"k"`
	AppID   string `json:"a"`
	KeyName string `json:"n"`
	KeyID   string `json:"i,omitempty"`
}

// SaveNewKey stores a key just created in the console, opened by
// OpenNewKey, as the secret name, recorded as holding that key.
func (s *Service) SaveNewKey(ctx context.Context, c Caller, name string, k NewKey) (SecretInfo, error) {
	return s.createSecret(ctx, c, name, k.Plain, k.KeyID)
}

// ErrNewKeyExpired is the cause of OpenNewKey's error for a sealed key
// past its NewKeySaveWindow.
var ErrNewKeyExpired = errors.New("the new key's Save As Secret window is over")

// errNewKeyForeign is the error for a sealed key that is not this
// session's and this flow's, or was altered: one message for every cause.
func errNewKeyForeign(err error) error {
	return &Error{Kind: KindForbidden, Message: "this Save As Secret form was not made for this console session and this new key, or it was altered; it was refused", Err: err}
}

// newKeyAAD binds a sealed key to its session, its flow and its expiry.
func newKeyAAD(sessionID, flow string, expires []byte) []byte {
	aad := []byte("appkeys console new key\x00" + sessionID + "\x00" + flow + "\x00")
	return append(aad, expires...)
}

// SealNewKey seals k, just created in sess, for the Save As Secret form of
// flow: the value to put in the page. It can be opened, by OpenNewKey, for
// this session and flow only, for NewKeySaveWindow.
func (s *Service) SealNewKey(sess ConsoleSession, flow string, k NewKey) (string, error) {
	if sess.ID == "" || flow == "" || len(flow) > maxFlowLen {
		return "", errors.New("seal a new key: no session or flow")
	}
	plain, err := json.Marshal(k)
	if err != nil {
		return "", err
	}
	expires := binary.BigEndian.AppendUint64(nil, uint64(s.now().Add(NewKeySaveWindow).UnixMilli()))
	sealed, err := sealWith(s.keys.newKeys, newKeyAAD(sess.ID, flow, expires), plain)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(append(expires, sealed...)), nil
}

// OpenNewKey opens a sealed key that a Save As Secret form of sess and
// flow posted back. A value from another session or flow, altered, or not
// sealed by this service at all is KindForbidden; one past its
// NewKeySaveWindow is KindInvalid wrapping ErrNewKeyExpired.
func (s *Service) OpenNewKey(sess ConsoleSession, flow, sealed string) (NewKey, error) {
	if sealed == "" {
		return NewKey{}, errorf(KindBadRequest, "the Save As Secret form lacks the new key; reload the page")
	}
	if sess.ID == "" || flow == "" || len(flow) > maxFlowLen || len(sealed) > maxSealedNewKeyLen {
		return NewKey{}, errNewKeyForeign(nil)
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < 8 {
		return NewKey{}, errNewKeyForeign(err)
	}
	expires := raw[:8]
	plain, err := openWith(s.keys.newKeys, newKeyAAD(sess.ID, flow, expires), raw[8:])
	if err != nil {
		return NewKey{}, errNewKeyForeign(err)
	}
	// The expiry is read only once the seal proved it genuine.
	if at := time.UnixMilli(int64(binary.BigEndian.Uint64(expires))); !s.now().Before(at) {
		return NewKey{}, &Error{Kind: KindInvalid, Err: ErrNewKeyExpired, Message: fmt.Sprintf(
			"the new API key can no longer be saved as a secret: that is possible for %d minutes after it is created", int(NewKeySaveWindow/time.Minute))}
	}
	var k NewKey
	if err := json.Unmarshal(plain, &k); err != nil || k.Plain == "" {
		return NewKey{}, errNewKeyForeign(err)
	}
	return k, nil
}
