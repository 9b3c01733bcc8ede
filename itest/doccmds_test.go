package itest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// docCmd is one command of a ```sh block of README.md or docs/*.md.
type docCmd struct {
	where string // file:line
	text  string // continuation lines joined, block variables expanded
	// secret: a command of its block uses the publisher secret, so the
	// whole block runs against a server that has one.
	secret bool
}

// docFiles are the documents whose commands and config files are checked.
func docFiles() []string {
	files, _ := filepath.Glob("../docs/*.md")
	return append([]string{"../README.md"}, files...)
}

// docCommands extracts the commands of every ```sh block: one per line
// (a trailing backslash continues it), blank and comment lines skipped, and
// a variable set in the block (L="...") expanded in the lines after it.
func docCommands(t *testing.T) []docCmd {
	t.Helper()
	var out []docCmd
	for _, f := range docFiles() {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(f, "../")
		in, start, blockStart := false, 0, 0
		vars := map[string]string{}
		var cur string
		for i, line := range strings.Split(string(b), "\n") {
			switch {
			case !in && (line == "```sh" || line == "```bash" || line == "```shell"):
				in, vars, cur, blockStart = true, map[string]string{}, "", len(out)
				continue
			case in && strings.HasPrefix(line, "```"):
				in = false
				secret := false
				for _, c := range out[blockStart:] {
					secret = secret || strings.Contains(strings.ToLower(c.text), "secret")
				}
				for i := blockStart; i < len(out); i++ {
					out[i].secret = secret
				}
				continue
			case !in:
				// A complete command quoted in the text runs too.
				for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(line, -1) {
					if docInlineRE.MatchString(m[1]) && !strings.Contains(m[1], "...") {
						out = append(out, docCmd{where: fmt.Sprintf("%s:%d", name, i+1), text: m[1]})
					}
				}
				continue
			}
			if cur == "" {
				start = i + 1
			}
			cur += strings.TrimSpace(line)
			if strings.HasSuffix(cur, `\`) {
				cur = strings.TrimSuffix(cur, `\`) + " "
				continue
			}
			cmd := stripShellComment(cur)
			cur = ""
			if cmd == "" || strings.HasPrefix(cmd, "#") {
				continue
			}
			if m := regexp.MustCompile(`^([A-Z_]+)="([^"]*)"$`).FindStringSubmatch(cmd); m != nil {
				vars[m[1]] = m[2]
				continue
			}
			for k, v := range vars {
				cmd = strings.ReplaceAll(cmd, "$"+k, v)
			}
			out = append(out, docCmd{where: fmt.Sprintf("%s:%d", name, start), text: cmd})
		}
	}
	return out
}

// docInlineRE matches the commands quoted in running text that are run:
// complete ones a reader would paste (others are fragments, "curl -d").
var docInlineRE = regexp.MustCompile(`^(echo '[^']*' > /dev/tcp/\S+|curl \S+:\d+\S*|docker run .* hasses -.*)$`)

// stripShellComment drops a trailing " # comment" that is outside quotes.
func stripShellComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && i > 0 && (s[i-1] == ' ' || s[i-1] == '\t'):
			return strings.TrimSpace(s[:i])
		}
	}
	return strings.TrimSpace(s)
}

// docCovered lists the commands a test cannot run as they are (they install
// system files, need docker or load the machine for minutes), each with
// what covers it: a test (which must exist) or CI's script, and text that
// file must contain (the evidence that it does what the command does).
var docCovered = []struct {
	re       string
	by       string // TestName, or "" for CI
	file     string
	evidence string
}{
	{`^go test -race -timeout 30m \./\.\.\.`, "", ".ci/run", "go test -race -count=1 -timeout 30m ./..."},
	{`^go test -run '\^\$' -bench \. `, "", ".ci/run", "go test -run '^$' -bench . -benchtime 1x ./..."},
	{`^go (build -o \S+|install) \./cmd/hasses( |$)`, "TestMain", "itest/harness_test.go", `"build", "-o", binPath`},
	{`go build -o \S+ \./cmd/hasses-load`, "", ".ci/run", "go vet ./..."},
	{`^CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o hasses \./cmd/hasses$`, "TestDockerImage", "itest/docker_test.go", `"-trimpath", "-ldflags=-s -w"`},
	{`^docker (build|run) `, "TestDockerImage", "itest/docker_test.go", `"--read-only", "--cap-drop=ALL"`},
	{`^(install -m|useradd|systemctl|journalctl|systemd-analyze) `, "TestSystemdUnit", "itest/systemd_test.go", "systemd-analyze"},
	{`^redis-server .*--save '' --appendonly no`, "TestClusterBehindNginx", "itest/cluster_harness_test.go", `"--save", "", "--appendonly", "no"`},
	{`^bench/(core|compare|cluster)\.sh \d+`, "", ".ci/run", `for f in bench/*.sh; do bash -n "$f"; done`},
	{`^go run \./bench/(tlsmem|sim|sockmem) `, "", ".ci/run", "go vet ./..."},
	{`^go run \./examples/chat$`, "TestChatExample", "itest/chat_test.go", `"../examples/chat"`},
	{`^export HASSES_CTL_SECRET=\$\(openssl rand -base64 24\)$`, "TestDocCommands", "itest/doccmds_test.go", `"HASSES_CTL_SECRET=docs-secret-0123456789"`},
	{`^/tmp/hasses-load `, "TestLoadFlags", "itest/doccmds_test.go", "cmd/hasses-load/main.go"},
}

// TestDocCommands runs every command of README.md and docs/*.md, so the
// docs cannot drift from the program: a hasses server command starts (on
// loopback ports, with test files for the files it names), hasses publish,
// curl and shell lines run against a server (one without a secret, one with
// the docs' docs-secret-0123456789), `docker run IMAGE OPTIONS` runs its OPTIONS after the
// image's entry point; the rest is in docCovered, with the test that covers
// it. A command no rule knows fails the test: add a rule.
func TestDocCommands(t *testing.T) {
	cmds := docCommands(t)
	if len(cmds) < 40 {
		t.Fatalf("found only %d commands", len(cmds))
	}
	env := newDocEnv(t)
	for _, c := range cmds {
		covered := false
		for _, cv := range docCovered {
			if regexp.MustCompile(cv.re).MatchString(c.text) {
				covered = true
				checkCoverage(t, c, cv.by, cv.file, cv.evidence)
				break
			}
		}
		if words := shellWords(t, c.text); len(words) > 2 && words[0] == "docker" && words[1] == "run" {
			// The image is the last "hasses" (--name hasses may come before).
			i := len(words) - 1
			for i > 1 && words[i] != "hasses" {
				i--
			}
			if i > 1 {
				opts := words[i+1:]
				if !slices.Contains(words[:i], "--entrypoint") {
					opts = append(imageEntrypoint(t), opts...)
				}
				env.container(t, c, opts)
				env.server(t, c, opts)
			}
			continue
		}
		if covered {
			continue
		}
		switch words := shellWords(t, strings.TrimSuffix(c.text, "&")); {
		case len(words) > 0 && isServer(words) != nil:
			env.server(t, c, isServer(words))
		case regexp.MustCompile(`(^|\| )(\./|/tmp/)?hasses publish |^curl |/dev/tcp/| nc `).MatchString(c.text):
			env.shell(t, c)
		default:
			t.Errorf("%s: no rule runs or covers %q: add one to TestDocCommands (itest/doccmds_test.go)", c.where, c.text)
		}
	}
}

// isServer returns the options of a command that runs the hasses server
// (hasses, ./hasses, /tmp/hasses, go run ./cmd/hasses), or nil.
func isServer(words []string) []string {
	switch {
	case len(words) > 3 && words[0] == "go" && words[1] == "run" && words[2] == "./cmd/hasses":
		return words[3:]
	case len(words) > 1 && (words[0] == "hasses" || words[0] == "./hasses" || words[0] == "/tmp/hasses") && words[1] != "publish":
		return words[1:]
	}
	return nil
}

// checkCoverage checks that the covering test exists and that its file
// holds the evidence.
func checkCoverage(t *testing.T, c docCmd, by, file, evidence string) {
	t.Helper()
	b, err := os.ReadFile("../" + file)
	if err != nil || !bytes.Contains(b, []byte(evidence)) {
		t.Errorf("%s: %q is covered by %s, but it lacks %q", c.where, c.text, file, evidence)
	}
	if by == "" {
		return
	}
	files, _ := filepath.Glob("*_test.go")
	for _, f := range files {
		if src, _ := os.ReadFile(f); bytes.Contains(src, []byte("func "+by+"(")) {
			return
		}
	}
	t.Errorf("%s: %q is covered by %s, which itest does not define", c.where, c.text, by)
}

// shellWords splits a command line as bash does (quotes, no expansion
// beyond it).
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	if strings.ContainsAny(s, "|;<>$`&") {
		return nil // a pipeline or a compound command: run as a whole
	}
	out, err := exec.Command("bash", "-c", "printf '%s\\0' "+s).Output()
	if err != nil {
		t.Fatalf("splitting %q: %v", s, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// docEnv is what the commands run against.
type docEnv struct {
	dir      string
	secret   string // a file holding docs-secret-0123456789, for /etc/hasses/secret
	jwtKey   string // a public key, for -jwt-key
	user     string // the user running the test, for -user
	open     *daemon
	withAuth *daemon
	cert     [2]string
}

func newDocEnv(t *testing.T) *docEnv {
	e := &docEnv{dir: t.TempDir()}
	e.secret = filepath.Join(e.dir, "secret")
	os.WriteFile(e.secret, []byte("docs-secret-0123456789\n"), 0o600)
	e.cert[0], e.cert[1], _ = writeCert(t, e.dir)
	os.Symlink(binPath, filepath.Join(e.dir, "hasses"))
	e.jwtKey, _ = esKey(t)
	if u, err := user.Current(); err == nil {
		e.user = u.Username
	}
	e.open = start(t, "-pub=127.0.0.1:0", "-admin=127.0.0.1:0")
	e.withAuth = start(t, "-pub=127.0.0.1:0", "-admin=127.0.0.1:0", "-ctl-secret=docs-secret-0123456789")
	return e
}

// server starts hasses with the options of a doc command, on loopback
// ports and with test files in place of the ones it names, and checks it
// starts; -h, -v and -check must exit 0.
func (e *docEnv) server(t *testing.T, c docCmd, opts []string) {
	t.Helper()
	var args []string
	for _, a := range opts {
		name, value, _ := strings.Cut(a, "=")
		switch name {
		case "-h", "-help", "--help", "-v", "-version", "-check":
			var mapped []string
			for _, o := range opts {
				n, v, _ := strings.Cut(o, "=")
				o, ok := e.standIn(n, v, o)
				if !ok {
					t.Errorf("%s: %q: no test stand-in for %s yet: add one in docEnv.standIn", c.where, c.text, n)
					return
				}
				mapped = append(mapped, o)
			}
			if code, _, errOut := runHasses(t, nil, mapped...); code != 0 {
				t.Errorf("%s: %q: exit %d: %s", c.where, c.text, code, errOut)
			} else {
				t.Logf("%s: ran hasses %q", c.where, mapped)
			}
			return
		case "-q":
			continue // the test reads the addresses from the start-up log line
		case "-p", "-cp", "-pub", "-admin":
			a = name + "=127.0.0.1:0"
		case "-cluster":
			if _, err := exec.LookPath("redis-server"); err != nil {
				t.Logf("%s: not run: redis-server is not installed", c.where)
				return
			}
			a = name + "=" + startRedis(t).url()
		default:
			var ok bool
			if a, ok = e.standIn(name, value, a); !ok {
				t.Errorf("%s: %q: no test stand-in for %s yet: add one in docEnv.standIn", c.where, c.text, name)
				return
			}
		}
		args = append(args, a)
	}
	t.Logf("%s: starting hasses %q", c.where, args)
	d := start(t, args...)
	if err := d.stop(); err != nil {
		t.Errorf("%s: %q: exit %v\n%s", c.where, c.text, err, tail(d.log.String(), 2000))
	}
}

// standIn returns the option a (named name, with value) with a test file
// in place of the file it names; false if there is none yet.
func (e *docEnv) standIn(name, value, a string) (string, bool) {
	switch name {
	case "-ctl-secret-file":
		return name + "=" + e.secret, true
	case "-cert-file":
		return name + "=" + e.cert[0], true
	case "-privatekey-file":
		return name + "=" + e.cert[1], true
	case "-l", "-pidfile", "-fifo":
		return name + "=" + filepath.Join(e.dir, filepath.Base(value)), true
	case "-config":
		if filepath.Base(value) != "hasses.conf" {
			return a, false
		}
		p, _ := filepath.Abs("../examples/hasses.conf") // the example of every option
		return name + "=" + p, true
	case "-jwt-key":
		return name + "=" + e.jwtKey, true
	case "-jwt-secret-file":
		return name + "=" + e.secret, true
	case "-user":
		return name + "=" + e.user, e.user != ""
	}
	return a, true
}

// container checks, with hasses -check, that the options a doc gives a
// container bind the control port, the publish API and the admin listener
// where a published port reaches them: not on the container's loopback.
func (e *docEnv) container(t *testing.T, c docCmd, opts []string) {
	t.Helper()
	args := []string{"-check"}
	for _, a := range opts {
		name, value, _ := strings.Cut(a, "=")
		if name == "-h" || name == "-v" {
			return
		}
		a, ok := e.standIn(name, value, a)
		if !ok {
			t.Errorf("%s: %q: no test stand-in for %s yet: add one in docEnv.standIn", c.where, c.text, name)
			return
		}
		args = append(args, a)
	}
	code, out, errOut := runHasses(t, nil, args...)
	if code != 0 {
		t.Errorf("%s: %q: hasses -check: %s", c.where, c.text, errOut)
		return
	}
	for _, m := range regexp.MustCompile(`(?m)^-(cp|pub|admin)=(\S+)$`).FindAllStringSubmatch(out, -1) {
		if strings.HasPrefix(m[2], "127.") || strings.HasPrefix(m[2], "[::1]") || strings.HasPrefix(m[2], "localhost") {
			t.Errorf("%s: %q: in a container -%s=%s binds its loopback, which a published port does not reach", c.where, c.text, m[1], m[2])
		}
	}
}

var docAddrRE = regexp.MustCompile(`(localhost|127\.0\.0\.1)(:|/)(8080|18080|8081|8085|18085|8086|8087)\b`)

// shell runs a doc command with bash, its addresses pointing at a test
// server (the one with the secret if the command uses one), hasses at the
// binary under test. A stream (curl -N) runs for a second.
func (e *docEnv) shell(t *testing.T, c docCmd) {
	t.Helper()
	d := e.open
	if c.secret {
		d = e.withAuth
	}
	// "nc HOST PORT" as "nc HOST:PORT", so the address is rewritten too.
	text := regexp.MustCompile(`(nc (-\S+ )*(localhost|127\.0\.0\.1)) (\d+)`).ReplaceAllString(c.text, "$1:$4")
	cmd := docAddrRE.ReplaceAllStringFunc(text, func(m string) string {
		p := docAddrRE.FindStringSubmatch(m)
		var addr string
		switch p[3] {
		case "8080", "18080":
			addr = d.sse
		case "8086":
			addr = d.pub
		case "8087":
			addr = d.adm
		default:
			addr = d.ctl
		}
		if p[2] == "/" { // /dev/tcp/HOST/PORT
			return strings.Replace(addr, ":", "/", 1)
		}
		return addr
	})
	cmd = regexp.MustCompile(`nc (-\S+ )*(\d+\.\d+\.\d+\.\d+):(\d+)`).ReplaceAllString(cmd, "nc $1$2 $3")
	cmd = strings.ReplaceAll(cmd, "/etc/hasses/secret", e.secret)
	cmd = regexp.MustCompile(`(^|\| )(\./|/tmp/)?hasses `).ReplaceAllString(cmd, "${1}"+binPath+" ")
	stream := strings.HasPrefix(cmd, "curl -N ")
	if stream {
		cmd = "curl --max-time 1 " + strings.TrimPrefix(cmd, "curl ")
	}
	if strings.Contains(cmd, " nc ") {
		if _, err := exec.LookPath("nc"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Errorf("%s: nc is not installed (.ci/run installs netcat-openbsd)", c.where)
			}
			t.Logf("%s: not run: nc is not installed", c.where)
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run := exec.CommandContext(ctx, "bash", "-c", "set -o pipefail; "+cmd)
	run.Dir = e.dir
	if c.secret {
		run.Env = append(os.Environ(), "HASSES_CTL_SECRET=docs-secret-0123456789") // the docs' $HASSES_CTL_SECRET
	}
	out, err := run.CombinedOutput()
	var ee *exec.ExitError
	if stream && errors.As(err, &ee) && ee.ExitCode() == 28 { // curl's timeout: the stream stayed open
		err = nil
	}
	silent := !strings.HasPrefix(cmd, "curl ") && !strings.Contains(cmd, "<&") // a write that reads no answer
	if err != nil || (len(out) == 0 && !silent) || bytes.Contains(out, []byte(`"error"`)) {
		t.Errorf("%s: %q\nran %q: %v\n%s", c.where, c.text, cmd, err, out)
		return
	}
	t.Logf("%s: ran %q: %s", c.where, cmd, tail(string(out), 200))
}

// TestLoadFlags: the hasses-load command lines of the docs use flags
// cmd/hasses-load defines (the runs themselves take minutes: see
// docs/performance.md).
func TestLoadFlags(t *testing.T) {
	src, err := os.ReadFile("../cmd/hasses-load/main.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range docCommands(t) {
		if !strings.HasPrefix(c.text, "/tmp/hasses-load ") {
			continue
		}
		n++
		for _, m := range regexp.MustCompile(` -([a-z-]+)`).FindAllStringSubmatch(c.text, -1) {
			if !regexp.MustCompile(`flag\.\w+\([^,]+, "` + regexp.QuoteMeta(m[1]) + `"`).Match(src) {
				t.Errorf("%s: hasses-load has no flag -%s", c.where, m[1])
			}
		}
	}
	if n == 0 {
		t.Error("no hasses-load command in the docs")
	}
}

// docConfigBlocks returns the fenced blocks of README.md and docs/*.md that
// are config files: every line that is not blank or a comment is an option
// (starts with '-'), and there are at least three.
func docConfigBlocks(t *testing.T) []docCmd {
	t.Helper()
	var out []docCmd
	for _, f := range docFiles() {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		blocks := regexp.MustCompile("(?ms)^```[a-z]*\n(.*?)^```").FindAllSubmatchIndex(b, -1)
		for _, m := range blocks {
			body := string(b[m[2]:m[3]])
			n, options := 0, true
			for _, l := range strings.Split(body, "\n") {
				l = strings.TrimSpace(l)
				switch {
				case l == "" || strings.HasPrefix(l, "#"):
				case strings.HasPrefix(l, "-"):
					n++
				default:
					options = false
				}
			}
			if options && n >= 3 {
				line := bytes.Count(b[:m[2]], []byte("\n")) + 1
				out = append(out, docCmd{where: fmt.Sprintf("%s:%d", strings.TrimPrefix(f, "../"), line), text: body})
			}
		}
	}
	return out
}

// TestDocConfigFiles: a block of the docs written as a config file is one
// that hasses -check accepts (with test files in place of the ones it
// names).
func TestDocConfigFiles(t *testing.T) {
	e := &docEnv{dir: t.TempDir()}
	e.secret = filepath.Join(e.dir, "secret")
	os.WriteFile(e.secret, []byte("docs-secret-0123456789\n"), 0o600)
	e.cert[0], e.cert[1], _ = writeCert(t, e.dir)
	e.jwtKey, _ = esKey(t)
	if u, err := user.Current(); err == nil {
		e.user = u.Username
	}
	for i, c := range docConfigBlocks(t) {
		var lines []string
		for _, l := range strings.Split(c.text, "\n") {
			name, value, _ := strings.Cut(strings.TrimSpace(stripShellComment(l)), "=")
			value = strings.TrimSpace(value)
			if a, ok := e.standIn(name, value, ""); ok && a != "" && name != "-config" && !strings.ContainsAny(value, " \t") {
				l = a
			}
			lines = append(lines, l)
		}
		conf := filepath.Join(e.dir, fmt.Sprintf("doc%d.conf", i))
		os.WriteFile(conf, []byte(strings.Join(lines, "\n")), 0o600)
		if code, _, errOut := runHasses(t, nil, "-check", "-config="+conf); code != 0 {
			t.Errorf("%s: the config file block is not one hasses accepts:\n%s\n%s", c.where, c.text, errOut)
		}
	}
}
