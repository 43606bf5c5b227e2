// Package configs holds the operator's files: the Prometheus scrape config
// and alert rules, the Grafana dashboard and the Kubernetes manifests. It has
// no code; its tests check those files against the programs they describe,
// so a renamed metric or a typo in a manifest fails `make test`.
package configs
