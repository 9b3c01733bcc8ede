package itest

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// needTool returns the path of a tool an example runs with, or skips the
// test (fails it in CI, where .ci/run installs it).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (.ci/run installs it)", name)
		}
		t.Skipf("%s is not installed (.ci/run installs it)", name)
	}
	return p
}

// TestPublisherExamples runs each publisher of examples/publishers against
// the real server, with a secret, as its header says: each publishes on the
// control port and through the HTTP API, and a subscriber gets both.
func TestPublisherExamples(t *testing.T) {
	dir, err := filepath.Abs("../examples/publishers")
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, "-pub=127.0.0.1:0", "-ctl-secret=docs-secret-0123456789")
	idRE := regexp.MustCompile(`(?m)^HTTP API: \{"ids":\["[0-9a-z]+-\d+"\],"receivers":1\}$`)
	for _, c := range []struct{ tool, file string }{
		{"php", "publish.php"},
		{"python3", "publish.py"},
		{"node", "publish.mjs"},
		{"bash", "publish.sh"},
	} {
		t.Run(c.file, func(t *testing.T) {
			if c.tool == "bash" {
				needTool(t, "curl")
			}
			tool := needTool(t, c.tool)
			token := strings.TrimPrefix(filepath.Ext(c.file), ".")
			msg := "hello; from " + c.file + " = ok"
			if c.tool == "bash" {
				msg = "hello from " + c.file + " = ok" // a plain unit: ';' would end it
			}
			s := d.subscribe("?subscribe=" + token)
			cmd := exec.Command(tool, filepath.Join(dir, c.file), token, msg)
			cmd.Env = append(os.Environ(), "HASSES_CTL="+d.ctl, "HASSES_PUB=http://"+d.pub+"/publish", "HASSES_CTL_SECRET=docs-secret-0123456789")
			out, err := cmd.CombinedOutput()
			if err != nil || !idRE.Match(out) || !strings.Contains(string(out), "control port: ") {
				t.Fatalf("%s: %v\n%s", c.file, err, out)
			}
			if c.tool != "bash" && !strings.Contains(string(out), `control port: {"ids":[`) {
				t.Errorf("%s: no id from the control port:\n%s", c.file, out)
			}
			for i := range 2 {
				if ev, err := s.next(10 * time.Second); err != nil || ev.Data != msg {
					t.Fatalf("%s: event %d: %+v %v", c.file, i+1, ev, err)
				}
			}
		})
	}
}

// TestGrafanaDashboard checks that every query of
// examples/grafana/hasses.json uses metrics a running server exports: a
// single node for the hasses_*, go_* and process_* ones, a cluster node for
// hasses_cluster_*.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../examples/grafana/hasses.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	if len(exprs) < 20 {
		t.Fatalf("only %d queries found", len(exprs))
	}
	selRE := regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{|label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	used := map[string]bool{}
	for _, e := range exprs {
		ms := selRE.FindAllStringSubmatch(e, -1)
		if len(ms) == 0 {
			t.Errorf("query %q names no metric", e)
		}
		for _, m := range ms {
			used[m[1]+m[2]] = true
		}
	}
	exported := func(d *daemon) map[string]bool {
		resp, err := http.Get("http://" + d.adm + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		names := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^(?:# TYPE )?([a-zA-Z_:][a-zA-Z0-9_:]*)`).FindAllStringSubmatch(string(body), -1) {
			names[m[1]] = true
		}
		return names
	}
	single := exported(start(t, "-admin=127.0.0.1:0"))
	var clusterOnly []string
	for name := range used {
		switch {
		case strings.HasPrefix(name, "hasses_cluster_"):
			clusterOnly = append(clusterOnly, name)
		case !single[name]:
			t.Errorf("the dashboard queries %s, which /metrics does not export", name)
		}
	}
	if len(clusterOnly) == 0 {
		return
	}
	t.Run("cluster", func(t *testing.T) {
		d := startNode(t, startRedis(t))
		// The per-node series come with the node's first view of the
		// cluster, which may follow its readiness by a moment.
		var node map[string]bool
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if node = exported(d); node["hasses_cluster_node_streams"] {
				break
			}
		}
		for _, name := range clusterOnly {
			if !node[name] {
				t.Errorf("the dashboard queries %s, which a cluster node's /metrics does not export", name)
			}
		}
	})
}
