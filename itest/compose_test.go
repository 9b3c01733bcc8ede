package itest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// composeFile is examples/compose/compose.yaml, as far as the test reads it.
type composeFile struct {
	Services map[string]struct {
		Image    string   `yaml:"image"`
		Command  []string `yaml:"command"`
		Hostname string   `yaml:"hostname"`
		Volumes  []string `yaml:"volumes"`
		Networks any      `yaml:"networks"`
	} `yaml:"services"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

// imageEntrypoint returns the options of the Dockerfile's ENTRYPOINT.
func imageEntrypoint(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ENTRYPOINT (\[.*\])$`).FindSubmatch(b)
	var ep []string
	if m == nil || json.Unmarshal(m[1], &ep) != nil || len(ep) < 2 || ep[0] != "/hasses" {
		t.Fatalf("Dockerfile's ENTRYPOINT: %q", m)
	}
	return ep[1:]
}

// TestComposeRecipe checks examples/compose (the cluster recipe of
// docs/cluster.md in containers) without containers: the file's structure,
// each node's options through hasses -check, then the recipe itself run on
// loopback (Redis, the three nodes with the file's options, nginx with its
// nginx.conf): a stream opened through nginx gets what is published on
// node 1. With docker compose installed, docker compose config validates
// the file too.
func TestComposeRecipe(t *testing.T) {
	raw, err := os.ReadFile("../examples/compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	entry := imageEntrypoint(t)
	var nodes []string
	for name, s := range cf.Services {
		if s.Image == "hasses" {
			nodes = append(nodes, name)
			if s.Hostname != name {
				t.Errorf("service %s: hostname %q, want its name (the node's name in tcpcluster)", name, s.Hostname)
			}
		}
	}
	slices.Sort(nodes)
	if len(nodes) != 3 || cf.Services["redis"].Image == "" || cf.Services["nginx"].Image == "" {
		t.Fatalf("want redis, 3 hasses nodes and nginx; have %v", cf.Services)
	}
	// Every node runs the image's entry point with the same options, which
	// hasses accepts.
	command := cf.Services[nodes[0]].Command
	for _, n := range nodes {
		if !slices.Equal(cf.Services[n].Command, command) {
			t.Errorf("%s's options differ from %s's", n, nodes[0])
		}
	}
	if code, _, errOut := runHasses(t, nil, append(append([]string{"-check"}, entry...), command...)...); code != 0 {
		t.Fatalf("hasses -check %q: %s", append(entry, command...), errOut)
	}
	// The trusted proxy is nginx's fixed address, inside the network.
	var nginxIP string
	if nets, ok := cf.Services["nginx"].Networks.(map[string]any); ok {
		for _, v := range nets {
			if m, ok := v.(map[string]any); ok {
				nginxIP, _ = m["ipv4_address"].(string)
			}
		}
	}
	if nginxIP == "" || !slices.Contains(command, "-trusted-proxies="+nginxIP) {
		t.Errorf("nginx's address %q is not the nodes' -trusted-proxies (%q)", nginxIP, command)
	}
	// nginx's config is the mounted file, and its upstreams are the nodes.
	conf, err := os.ReadFile("../examples/compose/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cf.Services["nginx"].Volumes, func(v string) bool { return strings.HasPrefix(v, "./nginx.conf:") }) {
		t.Error("nginx does not mount ./nginx.conf")
	}
	upstreams := regexp.MustCompile(`(?m)^\s*server (\S+):8080 `).FindAllStringSubmatch(string(conf), -1)
	if len(upstreams) != len(nodes) {
		t.Fatalf("nginx.conf has %d upstream servers, want %d", len(upstreams), len(nodes))
	}
	for i, u := range upstreams {
		if u[1] != nodes[i] {
			t.Errorf("nginx.conf's upstream %q is not the node %q", u[1], nodes[i])
		}
	}

	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err == nil {
		t.Logf("%s", out)
		cmd := exec.Command("docker", "compose", "-f", "../examples/compose/compose.yaml", "config", "-q")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("docker compose config: %v\n%s", err, out)
		}
	}

	// The recipe on loopback.
	path, err := exec.LookPath("nginx")
	if err != nil {
		if path, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			t.Skip("nginx is not installed (.ci/run installs it)")
		}
	}
	r := startRedis(t)
	var ds []*daemon
	body := string(conf)
	for i, n := range nodes {
		var args []string
		for _, a := range append(slices.Clone(entry), command...) {
			name, _, _ := strings.Cut(a, "=")
			switch name {
			case "-p", "-cp", "-pub", "-admin":
				a = name + "=127.0.0.1:0"
			case "-cluster":
				a = name + "=" + r.url()
			case "-trusted-proxies":
				a = name + "=127.0.0.1" // nginx, here
			}
			args = append(args, a)
		}
		d := start(t, args...)
		waitFor(t, n+" to join the cluster", func() bool { return d.ready() })
		ds = append(ds, d)
		body = strings.Replace(body, " "+upstreams[i][1]+":8080 ", " "+d.sse+" ", 1)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // nginx's workers run as nobody when started by root
	port := freePort(t)
	body = strings.Replace(body, "listen 80;", "listen 127.0.0.1:"+port+";", 1)
	main := "daemon off;\npid {{.Dir}}/nginx.pid;\nerror_log {{.Dir}}/error.log warn;\nevents {}\nhttp {\n" +
		"access_log off;\nclient_body_temp_path {{.Dir}}/body;\nproxy_temp_path {{.Dir}}/proxy;\n" +
		"fastcgi_temp_path {{.Dir}}/fastcgi;\nuwsgi_temp_path {{.Dir}}/uwsgi;\nscgi_temp_path {{.Dir}}/scgi;\n" +
		"include " + filepath.Join(dir, "default.conf") + ";\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "default.conf"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	ngx := runProxy(t, "nginx", main, proxyVars{Dir: dir, Port: port}, func(conf string) []string {
		return []string{path, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf}
	})
	s := mustGet(t, ngx.addr, "/sse?subscribe=room1", 200)
	waitFor(t, "the stream to reach a node", func() bool {
		n := 0
		for _, d := range ds {
			n += int(d.metric("hasses_streams"))
		}
		return n == 1
	})
	ds[0].send("room1=hello, cluster")
	if ev, err := s.next(5 * time.Second); err != nil || ev.Data != "hello, cluster" {
		t.Fatalf("through nginx: %+v %v\n%s", ev, err, ngx.errors())
	}
}
