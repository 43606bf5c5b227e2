// Package configs holds the operator's files: the Prometheus scrape config
// and alert rules, the Grafana dashboard, the Kubernetes manifests and the
// secret scanners' rules for our keys (gitleaks, TruffleHog). It has no code;
// its tests check those files against the programs they describe, so a
// renamed metric, a typo in a manifest or a rule that misses a key fails
// `make test`.
package configs
