package keyserver

import "github.com/appkeys/appkeys/internal/keyservice"

// Defaults of Config's fields left zero, for a command line to show.
const (
	DefaultVerifyFailureRate  = keyservice.DefaultVerifyFailureRate
	DefaultUsageRetention     = keyservice.DefaultUsageRetention
	DefaultVerifyFailureBurst = keyservice.DefaultVerifyFailureBurst
	// GitHubLeakKeysURL is where GitHub publishes the keys that sign its
	// secret scanning leak reports.
	GitHubLeakKeysURL = keyservice.GitHubLeakKeysURL
)

// TokenKind is a kind of bootstrap token an operator may supply in
// Config.AdminToken or Config.BootstrapToken: New mints one as the service
// would, and Check refuses a placeholder before anything starts.
type TokenKind = keyservice.TokenKind

// The bootstrap token kinds.
var (
	AdminToken = keyservice.AdminToken
	OwnerToken = keyservice.OwnerToken
)
