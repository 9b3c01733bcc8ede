package itest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hasses-go/hasses/internal/config"
)

// unitFile reads a systemd unit into section -> key -> values (a key may
// repeat, as SystemCallFilter does).
func unitFile(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	unit := map[string]map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			unit[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: bad line %q", path, line)
			}
			unit[section][k] = append(unit[section][k], v)
		}
	}
	return unit
}

// TestSystemdUnit checks examples/hasses.service: its ExecStart options are
// accepted by hasses' option parser, it runs in the foreground, its stop
// timeout exceeds -drain, the sandbox is there, and (where systemd-analyze
// is installed, always in CI) systemd itself accepts the unit and rates its
// exposure at most 2.0.
func TestSystemdUnit(t *testing.T) {
	unit := unitFile(t, "../examples/hasses.service")
	svc := unit["Service"]
	one := func(k string) string {
		if v := svc[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return "<unset>"
	}
	exec0 := strings.Fields(one("ExecStart"))
	if len(exec0) < 2 || exec0[0] != "/usr/local/bin/hasses" {
		t.Fatalf("ExecStart=%q", one("ExecStart"))
	}
	opts, err := config.Parse(exec0[1:])
	if err != nil {
		t.Fatalf("ExecStart's options: %v", err)
	}
	if !opts.NoDaemon || opts.User != "" {
		t.Errorf("ExecStart must use -nodaemon and leave the user to systemd: %+v", opts)
	}
	if dir := "/run/" + one("RuntimeDirectory") + "/"; opts.FIFO != "" && !strings.HasPrefix(opts.FIFO, dir) {
		t.Errorf("-fifo=%s is outside RuntimeDirectory %s, which ProtectSystem=strict leaves writable", opts.FIFO, dir)
	}
	stop, err := time.ParseDuration(one("TimeoutStopSec"))
	if err != nil || stop <= opts.Drain {
		t.Errorf("TimeoutStopSec=%s must exceed -drain=%s", one("TimeoutStopSec"), opts.Drain)
	}
	for k, want := range map[string]string{
		"Type": "simple", "Restart": "on-failure", "KillSignal": "SIGTERM", "LimitNOFILE": "65536",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
		"MemoryDenyWriteExecute": "yes", "LockPersonality": "yes", "RuntimeDirectory": "hasses",
	} {
		if got := one(k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if f := svc["SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
		t.Errorf("SystemCallFilter=%q, want @system-service first", f)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze is not installed; .ci/run installs systemd")
		}
		t.Skip("systemd-analyze not installed: the unit was checked by hand only")
	}
	// verify wants the executable to exist: point the copy at the test binary.
	b, _ := os.ReadFile("../examples/hasses.service")
	path := filepath.Join(t.TempDir(), "hasses.service")
	os.WriteFile(path, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/hasses ", binPath+" ")), 0o644)
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(analyze, "security", "--offline=yes", "--no-pager", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for hasses.service: ([0-9.]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("exposure level %.1f, want at most 2.0:\n%s", level, out)
	}
}
