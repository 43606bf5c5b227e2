# make test runs every test. It installs or starts what the tests need
# (Go modules, a throwaway PostgreSQL 15 cluster, Debian's chromium, the
# Redocly CLI pinned in tools/redocly, gitleaks pinned in tools/gitleaks,
# the Standard Webhooks library pinned in tools/standardwebhooks).
GO ?= go
FUZZTIME ?= 5s

.PHONY: test vet lint-api gitleaks axe standardwebhooks unit fuzz fuzz-quick build bench xcaddy bench-verify bench-verify-pg bench-sidecar bench-fanout bench-fanout-pg bench-usage bench-usage-pg bench-revocation-replicas soak soak-pg

# Every test, with a throwaway PostgreSQL 15 cluster and chromium.
test: vet lint-api gitleaks standardwebhooks
	scripts/ensure-chromium.sh
	scripts/with-postgres.sh $(MAKE) --no-print-directory unit fuzz-quick

# -race: vet then type-checks from the same compiled packages the -race
# tests use, so a cold machine compiles the module and Caddy once, not twice.
vet:
	$(GO) mod download
	$(GO) vet -race ./...

# api/openapi.yaml against Redocly's recommended rules: 0 errors, 0 warnings.
lint-api:
	scripts/lint-api.sh

# gitleaks at the version tools/gitleaks/go.mod pins, built from source into
# .tools/gitleaks once (a cold build takes minutes; later runs skip it), for
# the scanner-rule tests in configs/.
gitleaks:
	GO=$(GO) scripts/ensure-gitleaks.sh

# axe-core at the version tools/axe-core pins, for the console's browser
# tests' accessibility check.
axe:
	scripts/ensure-axe.sh

# The npm standardwebhooks package at the version tools/standardwebhooks
# pins, installed once, with which the webhook tests check signatures.
standardwebhooks:
	scripts/ensure-standardwebhooks.sh

unit: gitleaks axe standardwebhooks
	$(GO) test -race -count=1 -timeout 20m ./...
	# The end-to-end suites (key service, console, CLI, sidecar) once more, on PostgreSQL.
	APPKEYS_TEST_STORE=postgres $(GO) test -race -count=1 -timeout 10m ./internal/httpapi ./internal/client ./internal/console ./cmd/appkeys ./e2e

# A short, bounded run of every fuzz target; FUZZTIME=10m for a long one.
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

# The fuzz targets whose packages build in seconds (key parsing, the
# sidecar's decoders of the key service's answers), for make test. The
# others instrument Caddy or SQLite, a five-minute build on a cold machine,
# so they run in make fuzz; their seed corpora run in every make test.
fuzz-quick:
	scripts/fuzz.sh $(FUZZTIME) internal/apikey internal/verify

build:
	$(GO) build -o bin/appkeys ./cmd/appkeys
	$(GO) build -o bin/caddy ./cmd/caddy

# Caddy with appkey_auth built the way users build plugins (takes minutes).
xcaddy:
	xcaddy/build.sh bin/caddy

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# The key service's verify against a bare net/http handler, 100,000 keys,
# rounds interleaved (about 2 minutes); VERIFY_FLAGS=-h lists the knobs.
bench-verify:
	$(GO) run ./bench/verify $(VERIFY_FLAGS)

# Verify on PostgreSQL (one and two replicas) beside SQLite, in one run.
bench-verify-pg:
	scripts/with-postgres.sh sh -c 'go run ./bench/verify -database "$$APPKEYS_TEST_DATABASE_URL" -keys 20000 -sample 5000'

# The sidecar: plain reverse_proxy, appkey_auth on a cache hit and
# forward_auth to the key service, one Caddy, rounds interleaved (about
# 2 minutes); SIDECAR_FLAGS=-h lists the knobs.
bench-sidecar:
	$(GO) run ./bench/sidecar $(SIDECAR_FLAGS)

# The change feed with 1,000, 10,000 and 30,000 long-polls on one key
# service (SQLite): store reads, wake latency, memory and CPU, with waiting
# long-polls parked and held side by side (5 to 8 minutes); FANOUT_FLAGS=-h
# lists the knobs.
bench-fanout:
	$(GO) run ./bench/fanout $(FANOUT_FLAGS)

# The same on a throwaway PostgreSQL 15 cluster.
bench-fanout-pg:
	scripts/with-postgres.sh sh -c 'go run ./bench/fanout -database "$$APPKEYS_TEST_DATABASE_URL" -long-polls parked $(FANOUT_FLAGS)'

# Revocation through replica B reaching a sidecar that follows replica A's
# feed, two replicas on a throwaway PostgreSQL 15 cluster, writers on both
# (about a minute); REVOCATION_FLAGS=-h lists the knobs.
bench-revocation-replicas:
	scripts/with-postgres.sh sh -c 'go run ./bench/revocation -database "$$APPKEYS_TEST_DATABASE_URL" $(REVOCATION_FLAGS)'

# The sidecar and the key service held at their measured capacity for 10
# minutes: no error, memory flat (not part of make test); SOAK_FLAGS=-h
# lists the knobs.
soak:
	$(GO) run ./bench/soak $(SOAK_FLAGS)

# The same soak with the key service on a throwaway PostgreSQL 15 cluster.
soak-pg:
	scripts/with-postgres.sh sh -c 'go run ./bench/soak -database "$$APPKEYS_TEST_DATABASE_URL" $(SOAK_FLAGS)'

# The key service's cost of the sidecars' usage reports: 100 sidecars
# (34 apps, 3 each) reporting 1,000 keys each, round after round, on
# SQLite (about a minute); USAGE_FLAGS=-h lists the knobs.
bench-usage:
	$(GO) run ./bench/usage $(USAGE_FLAGS)

# The same on a throwaway PostgreSQL 15 cluster.
bench-usage-pg:
	scripts/with-postgres.sh sh -c 'go run ./bench/usage -database "$$APPKEYS_TEST_DATABASE_URL" $(USAGE_FLAGS)'
# A sidecar restarting cold: a fresh Caddy with appkey_auth, 100,000 valid
# keys all missing at once, with max_verify_calls 64 and without, side by
# side (about 3 minutes, seeding included; -data DIR keeps the seeded keys
# for later runs); COLDSTART_FLAGS=-h lists the knobs.
.PHONY: bench-coldstart
bench-coldstart:
	$(GO) run ./bench/coldstart $(COLDSTART_FLAGS)
