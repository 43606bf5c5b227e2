package keyservice

import (
	"context"
	"time"

	"github.com/appkeys/appkeys/internal/store"
)

// App kinds.
const (
	KindCloudFunction = "cloud_function"
	KindDashboardApp  = "dashboard_app"
)

// App is a Container App. It has no verifier token: the store keeps only
// its hash. ActiveKeys and OrphanedKeys are filled by ListApps and GetApp.
type App struct {
	ID           string
	OrgID        string
	Name         string
	Kind         string
	CreatedAt    time.Time
	CreatedBy    string
	DeletedAt    *time.Time
	ActiveKeys   int
	OrphanedKeys int
}

func appOf(a store.App) App {
	return App{ID: a.ID, OrgID: a.OrgID, Name: a.Name, Kind: a.Kind, CreatedAt: a.CreatedAt, CreatedBy: a.CreatedBy,
		DeletedAt: a.DeletedAt, ActiveKeys: a.ActiveKeys, OrphanedKeys: a.OrphanedKeys}
}

// AppCreated is the answer to CreateApp: the app and its verifier token,
// shown once.
type AppCreated struct {
	App           App
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
	token := newToken(verifierTokenPrefix)
	a := store.App{ID: newID("app"), OrgID: u.OrgID, Name: name, Kind: kind, VerifierHash: s.keys.hashToken(token), VerifierPrefix: token[:tokenPrefixLen],
		CreatedAt: s.now().UTC(), CreatedBy: u.ID}
	if err := s.store.CreateApp(ctx, a); err != nil {
		return AppCreated{}, s.conflict(err, "an app named %q already exists", name)
	}
	return AppCreated{App: appOf(a), VerifierToken: token}, nil
}

// ListApps lists the caller's organization's apps with key counts.
func (s *Service) ListApps(ctx context.Context, c Caller) ([]App, error) {
	u, err := c.user()
	if err != nil {
		return nil, err
	}
	apps, err := s.store.ListApps(ctx, u.OrgID, s.now())
	if err != nil {
		return nil, s.storeErr(err)
	}
	return each(apps, appOf), nil
}

// GetApp returns one app of the caller's organization.
func (s *Service) GetApp(ctx context.Context, c Caller, id string) (App, error) {
	u, err := c.user()
	if err != nil {
		return App{}, err
	}
	a, err := s.store.GetApp(ctx, u.OrgID, id, s.now())
	if err != nil {
		return App{}, s.notFound(err, "app %s not found", id)
	}
	return appOf(a), nil
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
	}
	return s.notFound(err, "app %s not found", id)
}
