// Package deploy holds no code: its tests check the deployment files beside
// them (the systemd unit, the container image, the Kubernetes manifests, the
// Prometheus alerts and the Grafana dashboard) with the real tool of each
// ecosystem where one is installed: systemd-analyze, buildah, promtool, and
// the Kubernetes API types with strict decoding.
//
// It is a module of its own so that the Kubernetes API packages stay out of
// the daemon's dependencies; it uses the daemon's module through a replace
// directive, to read the metric names the binary exports and to load the
// example mapping with the daemon's own parser.
//
// A tool that is missing is a skip that names it, except in CI (CI=true),
// where it is a failure. scripts/test.sh installs the tools.
package deploy
