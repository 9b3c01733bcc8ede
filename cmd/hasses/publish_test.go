package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestPublishTarget(t *testing.T) {
	for to, want := range map[string]string{
		"tcp://127.0.0.1:8085":        "tcp://127.0.0.1:8085",
		"http://127.0.0.1:8086":       "http://127.0.0.1:8086/publish",
		"http://127.0.0.1:8086/":      "http://127.0.0.1:8086/publish",
		"https://h.example/x/publish": "https://h.example/x/publish",
		"127.0.0.1:8085":              "error: has no scheme",
		"tcp://127.0.0.1":             "error: want tcp://HOST:PORT",
		"ftp://127.0.0.1:21":          "error: unknown scheme",
		"http:///publish":             "error: want http://HOST:PORT/publish",
	} {
		got, err := publishTarget(to)
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, want) && !strings.Contains(got, strings.TrimPrefix(want, "error: ")) || (err == nil) == strings.HasPrefix(want, "error: ") {
			t.Errorf("publishTarget(%q) = %q, want %q", to, got, want)
		}
	}
}

// Without -to, the refused dial says which default was used and how to
// name another server.
func TestExplainDefault(t *testing.T) {
	err := fmt.Errorf("publish API: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	got := explain(err, "http://127.0.0.1:8086/publish", false)
	for _, w := range []string{"cannot connect to http://127.0.0.1:8086/publish (connection refused)", "-pub=127.0.0.1:8086", "Without -to", "-to=tcp://HOST:PORT"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q lacks %q", got, w)
		}
	}
	if got := explain(fmt.Errorf("other"), "tcp://x:1", false); got != "other" {
		t.Errorf("a non-dial error changed: %q", got)
	}
}
