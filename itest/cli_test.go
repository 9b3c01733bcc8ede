package itest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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

// TestPublishErrors: what hasses publish says when something is wrong names
// the cause and the fix, without library prefixes.
func TestPublishErrors(t *testing.T) {
	d := start(t, "-ctl-secret=docs-secret-0123456789", "-pub=127.0.0.1:0")
	closed := "127.0.0.1:" + freePort(t)
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"-to", d.ctl, "t", "m"}, 2, []string{"has no scheme", "-to=tcp://" + d.ctl, "-to=http://" + d.ctl + "/publish"}},
		{[]string{"-to", "tcp://" + closed, "t", "m"}, 1, []string{"cannot connect to tcp://" + closed, "connection refused", "-cp=" + closed}},
		{[]string{"-to", "http://" + closed, "t", "m"}, 1, []string{"cannot connect to http://" + closed + "/publish", "-pub=" + closed}},
		{[]string{"-to", "tcp://" + d.ctl, "t", "m"}, 1, []string{"hasses publish: control port: authentication required"}},
		{[]string{"-to", "http://" + d.pub, "t", "m"}, 1, []string{"hasses publish: 401 Unauthorized: missing or wrong secret"}},
		{[]string{"-to", "http://" + d.pub, "-secret", "docs-secret-0123456789", "user-42", "m"}, 1, []string{`malformed token "user-42": '-' separates tokens in a subscription`}},
		{[]string{"-to", "tcp://" + d.ctl, "-secret", "docs-secret-0123456789", "user-42", "m"}, 1, []string{`control port: malformed token "user-42": '-' separates tokens`}},
	} {
		code, _, errOut := runHasses(t, nil, append([]string{"publish"}, c.args...)...)
		if code != c.code || strings.Contains(errOut, "hasses: ") {
			t.Errorf("%q: exit %d, want %d; stderr %q", c.args, code, c.code, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%q: stderr %q lacks %q", c.args, errOut, w)
			}
		}
	}
	// The address given with a bare http://HOST:PORT gets /publish.
	code, out, errOut := runHasses(t, nil, "publish", "-to", "http://"+d.pub, "-secret", "docs-secret-0123456789", "t", "m")
	if code != 0 || !strings.Contains(out, "0 receivers") {
		t.Errorf("-to http://HOST:PORT: exit %d, %q %q", code, out, errOut)
	}
}

// hasses -v names the version, commit, build date and Go version.
func TestVersionInfo(t *testing.T) {
	code, out, _ := runHasses(t, nil, "-v")
	for _, want := range []string{"hasses 2.", "\ncommit:  ", "\nbuilt:   ", "\ngo:      go1."} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("-v: exit %d, %q lacks %q", code, out, want)
		}
	}
}

// hasses -check loads what the options name, prints the effective
// configuration with secrets hidden and exits 0; or lists every problem
// and exits 2. It binds nothing: the ports may be in use.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := writeCert(t, dir)
	conf := filepath.Join(dir, "hasses.conf")
	os.WriteFile(conf, []byte("-p=8080\n-murl=/sse\n-cp=127.0.0.1:8085\n-ctl-secret=hunter2-long-enough-secret\n"), 0o600)
	hookSecret := filepath.Join(dir, "webhook.secret")
	os.WriteFile(hookSecret, []byte("webhook-secret-never-shown\n"), 0o600)
	busy := start(t)
	code, out, errOut := runHasses(t, nil, "-check", "-config="+conf, "-ssl", "-cert-file="+cert, "-privatekey-file="+key, "-p="+busy.sse,
		"-cluster=redis://:redispw@127.0.0.1:6379/0", "-webhook=https://app:hookpw@app.example/hook", "-webhook-secret-file="+hookSecret)
	if code != 0 || !strings.Contains(out, "-p="+busy.sse+"\n") || !strings.Contains(out, "-ctl-secret=REDACTED\n") ||
		!strings.Contains(out, "-webhook=https://app:REDACTED@app.example/hook\n") || strings.Contains(out+errOut, "never-shown") || strings.Contains(out+errOut, "hookpw") ||
		!strings.Contains(out, "-ssl\n") || strings.Contains(out+errOut, "hunter2") || strings.Contains(out+errOut, "redispw") {
		t.Errorf("good config: exit %d\nstdout:\n%s\nstderr: %s", code, out, errOut)
	}
	// What it printed is a config file hasses accepts, once given a secret
	// in place of the hidden one.
	eff := filepath.Join(dir, "effective.conf")
	os.WriteFile(eff, []byte(strings.NewReplacer("-ctl-secret=REDACTED", "-ctl-secret=another-long-enough-secret", "app:REDACTED@", "").Replace(out)), 0o600)
	if code, _, errOut := runHasses(t, nil, "-check", "-config="+eff); code != 0 {
		t.Errorf("the printed configuration does not check: %s", errOut)
	}

	os.WriteFile(conf, []byte("-p 8080\n-heartbeat=soon\n"), 0o600)
	os.WriteFile(hookSecret, []byte("short\n"), 0o600)
	code, out, errOut = runHasses(t, nil, "-check", "-config="+conf, "-ssl", "-cert-file="+key, "-privatekey-file="+cert,
		"-jwt-key="+filepath.Join(dir, "none.pem"), "-ctl-allow=10.0.0.0/33", "-bogus", "-webhook=https://app.example/hook", "-webhook-secret-file="+hookSecret)
	for _, want := range []string{"-p 8080\": write -p=8080", ":2: -heartbeat=soon", "unknown option -bogus", "missing -murl", "TLS certificate", "-jwt-key", "-ctl-allow",
		"-webhook-secret-file: webhook: the secret has 5 bytes"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("bad config: stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code != 2 || out != "" {
		t.Errorf("bad config: exit %d, stdout %q", code, out)
	}
}
