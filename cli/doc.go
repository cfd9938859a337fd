// Package cli implements promgate's commands: serve, check, certs dev, policy
// test and version. It parses flags, loads the configuration, constructs the
// other packages and runs them. It is the only package that builds the
// logger, owns the metrics registry or exits.
package cli
