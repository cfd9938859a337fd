// Package deploy holds the container image's helper and the Kubernetes
// manifests of promgate's three deployments (kubernetes/ingress-backend,
// kubernetes/exporter-sidecar and kubernetes/grafana-datasource), and tests
// them without a cluster or a Docker engine.
//
// The tests guarantee that the image's binary, built with the Makefile's
// GO_BUILD_STATIC command line that the Dockerfile runs, is static and runs;
// that every manifest parses, carries its required fields and keeps its
// selectors and labels consistent; that every container runs as non-root on a
// read-only root filesystem without privilege escalation or capabilities, with
// resource requests; that the gateway's probes use internal_listen; that every
// file an embedded promgate configuration names is mounted; and that each
// embedded configuration passes promgate check. A configuration that asks for
// a feature promgate refuses as "not supported yet" must fail check with
// exactly that message, so the test changes when the feature lands.
//
// The package has no exported API.
package deploy
