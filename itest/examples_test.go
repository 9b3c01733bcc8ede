package itest

import (
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
	d := start(t, "-pub=127.0.0.1:0", "-ctl-secret=s3cret")
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
			cmd.Env = append(os.Environ(), "HASSES_CTL="+d.ctl, "HASSES_PUB=http://"+d.pub+"/publish", "HASSES_CTL_SECRET=s3cret")
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
