package itest

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runHasses runs the binary to completion and returns its exit code and
// outputs.
func runHasses(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	// A hasses that starts where it should have refused is killed: the
	// test fails instead of hanging.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	if env != nil {
		cmd.Env = env
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// Help goes to standard output with exit 0, in every spelling users try,
// and names the publish subcommand.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--h", "-help", "--help"} {
		code, out, errOut := runHasses(t, nil, arg)
		if code != 0 || errOut != "" {
			t.Errorf("%s: exit %d, stderr %q", arg, code, errOut)
		}
		for _, want := range []string{"Usage: hasses -p=PORT", "hasses publish", "-ctl-secret", "HASSES_CTL_SECRET", "-help"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: help lacks %q:\n%s", arg, want, out)
			}
		}
	}
	code, out, _ := runHasses(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(out, "hasses ") {
		t.Errorf("--version: exit %d, %q", code, out)
	}
}

// A usage error prints the error and one line pointing to -h, not the
// whole help, and exits 2.
func TestUsageError(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-bogus"},
		{"-p=8080", "-murl=/sse"},
		{"-p=8080", "-cp=8085", "-murl=/sse", "stray"},
		{"-p=8080", "-cp=8085", "-murl=/sse", "-heartbeat=soon"},
	} {
		code, out, errOut := runHasses(t, nil, args...)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		if code != 2 || out != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], "hasses: ") ||
			lines[1] != "run 'hasses -h' for the options" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

func TestPublishUsage(t *testing.T) {
	code, out, errOut := runHasses(t, []string{"HASSES_CTL_SECRET=do-not-print"}, "publish", "-h")
	if code != 0 || errOut != "" || !strings.Contains(out, "Usage: hasses publish") || !strings.Contains(out, "-to") ||
		strings.Contains(out, "do-not-print") {
		t.Errorf("publish -h: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, args := range [][]string{{"publish"}, {"publish", "-bogus", "t"}, {"publish", "t", "m", "extra"}} {
		code, out, errOut := runHasses(t, nil, args...)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		if code != 2 || out != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], "hasses publish: ") ||
			lines[1] != "run 'hasses publish -h' for the options" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}
