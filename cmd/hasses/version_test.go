package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "7c5fc18abc"}, {Key: "vcs.time", Value: "2026-12-05T03:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	for date, want := range map[string][]string{
		"":                     {"commit:  7c5fc18abc (with uncommitted changes)\n", "built:   2026-12-05T03:00:00Z (commit date)\n", "go:      go1.26.8 "},
		"2026-12-06T00:00:00Z": {"built:   2026-12-06T00:00:00Z\n"},
	} {
		got := versionText(bi, date)
		for _, w := range append(want, "hasses ") {
			if !strings.Contains(got, w) {
				t.Errorf("date %q: %q lacks %q", date, got, w)
			}
		}
	}
	if got := versionText(nil, ""); !strings.Contains(got, "commit:  unknown\nbuilt:   unknown\n") {
		t.Errorf("without build info: %q", got)
	}
}
