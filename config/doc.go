// Package config defines promgate's one YAML configuration file: its types, their
// defaults, strict loading and validation.
//
// The package is pure. It does no network I/O, starts no goroutines and keeps no
// globals. Load decodes onto Default with unknown keys refused and resolves
// relative paths against the file's folder. Validate reports every problem at
// once, each prefixed by its YAML path, so that `promgate check` can list them
// all. Checks that need files, certificates or policies live in the constructors
// of the packages that use them.
//
// A section whose feature is not built yet is refused with a "not supported
// yet" message, never silently ignored.
package config
