// Package crashtest proves the key service keeps what it acknowledged when
// its process dies: the tests build the real appkeys binary, load a running
// `appkeys serve` with concurrent key creates and revokes, kill it with
// SIGKILL at a random moment, restart it on the same store (SQLite in a data
// directory, or a PostgreSQL database), and check that every acknowledged
// create still verifies, every acknowledged revoke stays revoked, and no key,
// audit record or event is half made.
//
// The package holds tests only. APPKEYS_CRASH_ROUNDS sets the SQLite rounds
// (default 20), APPKEYS_CRASH_PG_ROUNDS the PostgreSQL rounds (default 5;
// they need the cluster that make test starts), and APPKEYS_CRASH_SEED
// replays a run's random choices (the kill moments still depend on timing).
package crashtest
