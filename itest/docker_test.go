package itest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDockerImage builds the Dockerfile at the repository root around a
// static binary, runs the image on a private docker daemon with its ports
// published on loopback only, and checks that a stream receives what is
// published from the host through the control port. Outside CI it is
// skipped when dockerd is not installed; in CI (CI=true) that is a failure.
//
// The daemon runs with its own data, exec root and socket under a temporary
// directory, on a bridge of its own, without touching iptables or
// ip_forward; whatever it still leaves behind (runtime directories, and
// iptables chains should a version ignore --iptables=false) is removed.
func TestDockerImage(t *testing.T) {
	dockerd, err1 := exec.LookPath("dockerd")
	docker, err2 := exec.LookPath("docker")
	switch {
	case (err1 != nil || err2 != nil) && os.Getenv("CI") == "true":
		t.Fatalf("docker is not installed (dockerd: %v, docker: %v); .ci/run installs docker.io", err1, err2)
	case err1 != nil || err2 != nil:
		t.Skip("dockerd is not installed (apt-get install docker.io)")
	case os.Geteuid() != 0 && os.Getenv("CI") == "true":
		t.Fatal("dockerd needs root")
	case os.Geteuid() != 0:
		t.Skip("dockerd needs root")
	}

	dir, err := os.MkdirTemp("", "hasses-docker")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	host := snapshotHost()
	t.Cleanup(func() { host.restore(t) })

	// A bridge of our own, so that a docker0 of another daemon is left
	// alone; named and numbered after the process, so that test runs on the
	// same machine (other work trees) do not collide.
	bridge := fmt.Sprintf("hasses%d", os.Getpid())
	subnet := fmt.Sprintf("172.29.%d.1/24", os.Getpid()%250)
	for _, args := range [][]string{
		{"link", "add", bridge, "type", "bridge"},
		{"addr", "add", subnet, "dev", bridge},
		{"link", "set", bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "delete", bridge).CombinedOutput(); err != nil {
			t.Errorf("deleting bridge %s: %v\n%s", bridge, err, out)
		}
	})

	sock := filepath.Join(dir, "docker.sock")
	dlog := &logBuffer{}
	daemonCmd := exec.Command(dockerd,
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"-H", "unix://"+sock, "--pidfile", filepath.Join(dir, "docker.pid"),
		"--storage-driver=vfs", // the image is one 23 MB layer; vfs works on any file system
		"--bridge", bridge, "--iptables=false", "--ip-forward=false", "--ip-masq=false")
	daemonCmd.Stdout, daemonCmd.Stderr = dlog, dlog
	if err := daemonCmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { daemonCmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		daemonCmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			daemonCmd.Process.Kill()
			<-exited
			t.Errorf("dockerd did not exit within 20 s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("dockerd log:\n%s", tail(dlog.String(), 3000))
		}
	})

	env := append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+filepath.Join(dir, "config"), "DOCKER_BUILDKIT=0")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(docker, args...)
		cmd.Env = env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
		}
		return strings.TrimSpace(out.String()), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	// The image's build context, as the Dockerfile expects it: the binary
	// beside the Dockerfile. The build overlaps the daemon's start.
	ctxDir := filepath.Join(dir, "context")
	os.Mkdir(ctxDir, 0o755)
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(ctxDir, "hasses"), "../cmd/hasses")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(ctxDir, f), b, 0o644)
	}

	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := run("version"); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("dockerd exited:\n%s", dlog.String())
		default:
		}
		if time.Now().After(end) {
			t.Fatalf("dockerd not ready after 30 s:\n%s", dlog.String())
		}
	}

	image := fmt.Sprintf("hasses-itest:%d", os.Getpid())
	must("build", "-q", "-t", image, ctxDir)
	t.Cleanup(func() {
		if _, err := run("rmi", "-f", image); err != nil {
			t.Error(err)
		}
	})
	if user := must("image", "inspect", "-f", "{{.Config.User}}", image); user != "65534:65534" {
		t.Errorf("image user %q, want 65534:65534", user)
	}
	// docs/docker.md says "about 23 MB": the static binary alone.
	if size, _ := strconv.Atoi(must("image", "inspect", "-f", "{{.Size}}", image)); size == 0 || size > 25<<20 {
		t.Errorf("image of %d bytes, want a small one", size)
	} else {
		t.Logf("image of %.1f MB", float64(size)/1e6)
	}

	// The hardened run of docs/docker.md, with one extra option appended to
	// the image's defaults.
	id := must("run", "-d", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
		"-p", "127.0.0.1:0:8080", "-p", "127.0.0.1:0:8085", image, "-heartbeat=1s")
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := exec.Command(docker, "-H", "unix://"+sock, "logs", id).CombinedOutput()
			t.Logf("container log:\n%s", tail(string(logs), 3000))
		}
		if _, err := run("rm", "-f", id); err != nil {
			t.Error(err)
		}
	})
	d := &daemon{t: t, sse: publishedPort(t, must("port", id, "8080/tcp")), ctl: publishedPort(t, must("port", id, "8085/tcp"))}
	waitFor(t, "hasses to start in the container", func() bool {
		logs, _ := exec.Command(docker, "-H", "unix://"+sock, "logs", id).CombinedOutput()
		return bytes.Contains(logs, []byte("hasses started"))
	})

	s := d.subscribe("?subscribe=room1&id=c1")
	if s.Status != 200 {
		t.Fatalf("status %d", s.Status)
	}
	// The container sees the host through the bridge's private address, so
	// the default publisher policy admits it without a secret.
	d.send("room1=hello from the host\n")
	s.expect("hello from the host")
	heartbeat := false
	s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !heartbeat {
		p, err := s.chunk()
		if err != nil {
			t.Fatalf("no heartbeat with -heartbeat=1s: %v", err)
		}
		heartbeat = strings.HasPrefix(p, ":")
	}
	s.c.Close()

	// docker stop sends SIGTERM to hasses, process 1 in the container.
	must("stop", "-t", "10", id)
	if code := must("inspect", "-f", "{{.State.ExitCode}}", id); code != "0" {
		t.Errorf("exit code %s after docker stop, want 0", code)
	}
}

// publishedPort reads "127.0.0.1:32769" from docker port's answer and
// checks that it is on loopback only.
func publishedPort(t *testing.T, out string) string {
	t.Helper()
	lines := strings.Split(out, "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "127.0.0.1:") {
		t.Fatalf("docker port: %q, want one 127.0.0.1 address", out)
	}
	return lines[0]
}

// hostState is what dockerd may change on the host outside its own
// directories.
type hostState struct {
	iptables   map[string][]string // table -> "-A ..." and ":CHAIN POLICY" lines
	ipForward  []byte
	runtimeDir map[string]bool // directories dockerd creates at fixed places
}

var dockerRuntimeDirs = []string{"/run/docker/plugins", "/run/docker", "/run/containerd/s", "/run/containerd"}

func snapshotHost() *hostState {
	h := &hostState{iptables: iptablesState(), runtimeDir: map[string]bool{}}
	h.ipForward, _ = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	for _, d := range dockerRuntimeDirs {
		_, err := os.Stat(d)
		h.runtimeDir[d] = err == nil
	}
	return h
}

// restore undoes what appeared since the snapshot: new iptables rules and
// chains, changed policies, ip_forward, and the runtime directories (only
// those that did not exist before, and only when empty).
func (h *hostState) restore(t *testing.T) {
	now := iptablesState()
	for table, lines := range now {
		before := h.iptables[table]
		var newChains []string
		for i := len(lines) - 1; i >= 0; i-- {
			l := lines[i]
			if slices.Contains(before, l) {
				continue
			}
			f := strings.Fields(l)
			switch {
			case f[0] == "-A":
				ipt(t, append([]string{"-t", table, "-D"}, f[1:]...)...)
			case f[0][0] == ':' && f[1] == "-":
				newChains = append(newChains, f[0][1:])
			case f[0][0] == ':': // a built-in chain's policy changed
				for _, b := range before {
					if bf := strings.Fields(b); bf[0] == f[0] {
						ipt(t, "-t", table, "-P", f[0][1:], bf[1])
					}
				}
			}
		}
		for _, c := range newChains {
			ipt(t, "-t", table, "-F", c)
		}
		for _, c := range newChains {
			ipt(t, "-t", table, "-X", c)
		}
	}
	if now, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); h.ipForward != nil && !bytes.Equal(now, h.ipForward) {
		t.Logf("restoring ip_forward to %s", h.ipForward)
		os.WriteFile("/proc/sys/net/ipv4/ip_forward", h.ipForward, 0o644)
	}
	for _, d := range dockerRuntimeDirs {
		if !h.runtimeDir[d] {
			if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Logf("leaving %s: %v", d, err)
			}
		}
	}
}

func ipt(t *testing.T, args ...string) {
	t.Logf("iptables %s (left by dockerd)", strings.Join(args, " "))
	if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
		t.Errorf("iptables %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// iptablesState reads iptables-save into rule and chain lines per table;
// nil without iptables.
func iptablesState() map[string][]string {
	cmd := exec.Command("iptables-save")
	out, err := cmd.Output()
	if err != nil {
		return nil
	}
	state := map[string][]string{}
	table := ""
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
			state[table] = []string{}
		case strings.HasPrefix(l, "-A "), strings.HasPrefix(l, ":"):
			if strings.HasPrefix(l, ":") { // drop the packet counters
				if f := strings.Fields(l); len(f) >= 2 {
					l = f[0] + " " + f[1]
				}
			}
			state[table] = append(state[table], l)
		}
	}
	return state
}
