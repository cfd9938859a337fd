package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Version is set at build time with -ldflags "-X github.com/promgate/promgate/cli.Version=v1.2.3".
var Version = "dev"

type buildInfo struct {
	version, revision, goVersion string
}

func readBuildInfo() buildInfo {
	b := buildInfo{version: Version, revision: "unknown", goVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.version = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				b.revision = s.Value
			}
		}
	}
	return b
}

func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	b := readBuildInfo()
	fmt.Fprintf(stdout, "promgate %s (revision %s, %s, %s/%s)\n", b.version, b.revision, b.goVersion, runtime.GOOS, runtime.GOARCH)
	return nil
}
