package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/hasses-go/hasses/internal/server"
)

// buildDate is set by release builds:
// go build -ldflags "-X main.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)".
// Without it, -v shows the commit's date.
var buildDate string

// versionText is what hasses -v prints: the version, then the commit, the
// build date and the Go version, from the build info the go command embeds.
func versionText(bi *debug.BuildInfo, date string) string {
	commit, commitTime, modified := "unknown", "", false
	goVersion := runtime.Version()
	if bi != nil {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				commitTime = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		commit += " (with uncommitted changes)"
	}
	switch {
	case date != "":
	case commitTime != "":
		date = commitTime + " (commit date)"
	default:
		date = "unknown"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hasses %s\n", server.Version)
	fmt.Fprintf(&b, "commit:  %s\n", commit)
	fmt.Fprintf(&b, "built:   %s\n", date)
	fmt.Fprintf(&b, "go:      %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
