package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseHassesCommandLine(t *testing.T) {
	o, err := Parse(strings.Fields("-p=8080 -cp=8085 -murl=/sse -fifo=/run/h/fifo -sep=| -debug -l=/var/log/h.log " +
		"-pidfile=/run/h.pid -cors-base=http://example.com -ra -user=nobody -nodaemon"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Port != ":8080" || o.CtlPort != ":8085" || o.MURL != "/sse" || o.FIFO != "/run/h/fifo" || o.Sep != '|' ||
		!o.Debug || o.LogFile != "/var/log/h.log" || o.PidFile != "/run/h.pid" || o.CORSBase != "http://example.com" ||
		!o.Reinit || o.User != "nobody" || !o.NoDaemon || LogLevel(o) != 2 {
		t.Errorf("options %+v", o)
	}
	o, err = Parse([]string{"-p", "127.0.0.1:0", "--cp=[::1]:9", "-murl=/e", "-heartbeat=5", "-lifetime=90s", "-q", "-ssl",
		"-cert-file=c.pem", "-privatekey-file=k.pem"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Port != "127.0.0.1:0" || o.CtlPort != "[::1]:9" || o.Heartbeat != 5*time.Second || o.Lifetime != 90*time.Second ||
		LogLevel(o) != 0 || !o.SSL {
		t.Errorf("options %+v", o)
	}
}

func TestClusterOptions(t *testing.T) {
	o, err := Parse(strings.Fields("-p=8080 -cp=8085 -murl=/sse"))
	if err != nil || o.Cluster != "" || o.ClusterPrefix != "hasses" || o.ClusterLog != 100000 || o.ClusterQueue != 1000 {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	o, err = Parse(strings.Fields("-p=8080 -cp=8085 -murl=/sse -cluster=redis+sentinel://s1:26379/0?master=m -cluster-prefix=blue -cluster-log=5000 -cluster-queue=10"))
	if err != nil || o.Cluster != "redis+sentinel://s1:26379/0?master=m" || o.ClusterPrefix != "blue" || o.ClusterLog != 5000 || o.ClusterQueue != 10 {
		t.Fatalf("cluster options: %+v %v", o, err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range []string{
		"-cp=8085 -murl=/sse",
		"-p=8080 -murl=/sse",
		"-p=8080 -cp=8085",
		"-p=8080 -cp=8085 -murl=/sse -bogus",
		"-p=8080 -cp=8085 -murl=/sse -fifo=rel/fifo",
		"-p=8080 -cp=8085 -murl=/sse -l=log.txt",
		"-p=8080 -cp=8085 -murl=/sse -pidfile=x.pid",
		"-p=8080 -cp=8085 -murl=/sse -sep=ab",
		"-p=99999 -cp=8085 -murl=/sse",
		"-p=8080 -cp=8085 -murl=sse",
		"-p=8080 -cp=8085 -murl=/sse -ssl",
		"-p=8080 -cp=8085 -murl=/sse -ra=1",
		"-p=8080 -cp=8085 -murl=/sse -heartbeat=soon",
		"-p=8080 -cp=8085 -murl=/sse extra",
		"-p=8080 -cp=8085 -murl=/sse -cluster=http://redis:6379",
		"-p=8080 -cp=8085 -murl=/sse -cluster-prefix={x}",
		"-p",
		"-p=8080 -cp=8085 -murl=/sse -jwt-key=/k.pem -jwt-secret-file=/k.secret",
		"-p=8080 -cp=8085 -murl=/sse -jwt-audience=hasses",
		"-p=8080 -cp=8085 -murl=/sse -jwt-require-exp",
		"-p=8080 -cp=8085 -murl=/sse -trusted-proxies=10.0.0.0/33",
		"-p=8080 -cp=8085 -murl=/sse -trusted-proxies=proxy.example",
		"-p=8080 -cp=8085 -murl=/sse -ctl-secret=s3cret", // issue 16, item 7: too short
		"-p=8080 -cp=8085 -murl=/sse -ctl-secret=0123456789abcde",
	} {
		if _, err := Parse(strings.Fields(args)); err == nil || errors.Is(err, ErrHelp) {
			t.Errorf("%q: no usage error", args)
		}
	}
	if _, err := Parse(strings.Fields("-p=8080 -cp=8085 -murl=/sse -ctl-secret=0123456789abcdef")); err != nil {
		t.Errorf("a 16-byte secret: %v", err)
	}
	o, err := Parse(strings.Fields("-p=8080 -cp=8085 -murl=/sse -jwt-secret-file=/k -jwt-require-exp -jwt-audience=a -jwt-issuer=i"))
	if err != nil || o.JWTSecretFile != "/k" || !o.JWTRequireExp || o.JWTAudience != "a" || o.JWTIssuer != "i" {
		t.Errorf("jwt options: %+v %v", o, err)
	}
	for _, h := range []string{"-h", "--h", "-help", "--help"} {
		if _, err := Parse([]string{"-p=8080", h}); !errors.Is(err, ErrHelp) {
			t.Errorf("%s: %v", h, err)
		}
	}
	for _, v := range []string{"-v", "-version", "--version"} {
		if _, err := Parse([]string{v}); !errors.Is(err, ErrVersion) {
			t.Errorf("%s: %v", v, err)
		}
	}
}

func TestConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hasses.conf")
	os.WriteFile(path, []byte("# comment\n\n  -p=8080   # trailing comment\n-cp=8085\n-murl=/sse-event\n-ra\n#-user=hyper\n# -debug\n-cors-base=http://a\\#b\n"), 0o644)
	o, err := Parse([]string{"-config=" + path, "-p=9090"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Port != ":9090" || o.CtlPort != ":8085" || o.MURL != "/sse-event" || !o.Reinit || o.User != "" || o.Debug ||
		o.CORSBase != "http://a#b" {
		t.Errorf("options %+v", o)
	}
	os.WriteFile(path, []byte("-p=8080\n-nope\n"), 0o644)
	if _, err := Parse([]string{"-config=" + path}); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Errorf("bad line: %v", err)
	}
	if _, err := Parse([]string{"-config=/does/not/exist", "-p=1", "-cp=2", "-murl=/s"}); err == nil {
		t.Error("missing config file accepted")
	}
}

func TestExampleConfig(t *testing.T) {
	o, err := Parse([]string{"-config=../../examples/hasses.conf"})
	if err != nil {
		t.Fatal(err)
	}
	if o.MURL == "" || o.Port == "" {
		t.Errorf("example config: %+v", o)
	}
}

// TestExampleConfigComplete keeps examples/hasses.conf in step with the
// options table: every option that a config file may hold appears in it,
// set or as a commented line ("#-name" or "#-name=...").
func TestExampleConfigComplete(t *testing.T) {
	b, err := os.ReadFile("../../examples/hasses.conf")
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "#")
		if rest, ok := strings.CutPrefix(line, "-"); ok {
			name, value, _ := strings.Cut(rest, "=")
			present[name] = true
			// The commented values must be valid too: uncommenting one works.
			if opt := lookup(name); opt == nil {
				t.Errorf("hasses.conf:%d: unknown option %q", n+1, line)
			} else if err := opt.set(Defaults(), value); err != nil {
				t.Errorf("hasses.conf:%d: %q: %v", n+1, line, err)
			}
		}
	}
	for _, o := range options {
		if o.name == "h" || o.name == "v" || o.name == "config" || o.name == "check" { // not allowed in a file
			continue
		}
		if !present[o.name] {
			t.Errorf("examples/hasses.conf lacks -%s (add it, commented out, with its default)", o.name)
		}
	}
}

func TestUsageMentionsEveryOption(t *testing.T) {
	u := Usage()
	for _, o := range options {
		if !strings.Contains(u, "-"+o.name) {
			t.Errorf("usage lacks -%s", o.name)
		}
	}
}

// FuzzParse feeds arbitrary command lines (arguments separated by NUL) to
// Parse: it never panics, and what it accepts is valid and, turned back
// into options, parses again to the same essentials.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"-p=8080\x00-cp=8085\x00-murl=/sse",
		"--help",
		"-p\x00127.0.0.1:0\x00--cp=[::1]:9\x00-murl=/e\x00-heartbeat=5\x00-sep=|",
		"-p=1\x00-fifo=/run/x\x00-murl=/a\x00-version",
		"-p=1\x00-cp=2\x00-murl=/s\x00-max-lag=0\x00-fifo-mode=777\x00-pub-rate=1.5",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, "\x00")
		for _, a := range args {
			if strings.Contains(a, "config") || strings.Contains(a, "secret-file") {
				return // reads files: not this fuzzer's business
			}
		}
		o, err := Parse(args)
		if err != nil {
			return
		}
		if o.Port == "" || o.MURL == "" || (o.CtlPort == "" && o.FIFO == "") || o.MaxMessage <= 0 {
			t.Fatalf("accepted invalid options %+v from %q", o, args)
		}
		again, err := Parse([]string{"-p=" + o.Port, "-murl=" + o.MURL, "-cp=" + o.CtlPort, "-fifo=" + o.FIFO, "-sep=" + string([]byte{o.Sep})}) // the byte itself, not the rune
		if err != nil {
			t.Fatalf("re-parsing %+v: %v", o, err)
		}
		if again.Port != o.Port || again.MURL != o.MURL || again.CtlPort != o.CtlPort || again.FIFO != o.FIFO || again.Sep != o.Sep {
			t.Fatalf("round trip %+v -> %+v", o, again)
		}
	})
}

// The README and the example config spell every default as Defaults has
// it: the defaults are written once, and the docs are checked against them.
func TestDocumentedDefaults(t *testing.T) {
	defaults := DefaultText()
	optRE := regexp.MustCompile("(?m)(?:`|^#)-([a-z0-9-]+)=([^`\\s,]+)")
	for _, file := range []string{"../../README.md", "../../examples/hasses.conf"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range optRE.FindAllStringSubmatch(string(b), -1) {
			name, value := m[1], m[2]
			d, ok := defaults[name]
			if !ok || strings.ToUpper(value) == value && strings.Trim(value, "0123456789") != "" {
				continue // no default value, or a placeholder such as PORT
			}
			if value != d {
				t.Errorf("%s shows -%s=%s, but its default is %s", file, name, value, d)
			}
		}
	}
}

// The admin listener reveals the server's state, so a bare port binds
// loopback; all interfaces must be asked for. The profiler is opt-in.
func TestAdminAddress(t *testing.T) {
	for in, want := range map[string]string{
		"8087":          "127.0.0.1:8087",
		":8087":         ":8087",
		"0.0.0.0:8087":  "0.0.0.0:8087",
		"[::1]:8087":    "[::1]:8087",
		"10.0.0.5:8087": "10.0.0.5:8087",
	} {
		o, err := Parse([]string{"-p=8080", "-cp=8085", "-murl=/sse", "-admin=" + in})
		if err != nil {
			t.Fatalf("-admin=%s: %v", in, err)
		}
		if o.Admin != want {
			t.Errorf("-admin=%s: address %q, want %q", in, o.Admin, want)
		}
		if o.Pprof {
			t.Errorf("-admin=%s: pprof on by default", in)
		}
	}
	o, err := Parse([]string{"-p=8080", "-cp=8085", "-murl=/sse", "-admin=8087", "-pprof"})
	if err != nil || !o.Pprof {
		t.Errorf("-pprof: %v, %+v", err, o)
	}
	if _, err := Parse([]string{"-p=8080", "-cp=8085", "-murl=/sse", "-admin=99999"}); err == nil {
		t.Error("-admin=99999 accepted")
	}
}
func TestTrustedProxies(t *testing.T) {
	for _, c := range []struct{ arg, want string }{
		{"", "none"}, // issue 16, item 3: not even loopback by default
		{"-trusted-proxies=none", "none"},
		{"-trusted-proxies=10.0.3.0/24,127.0.0.1", "10.0.3.0/24,127.0.0.1"},
		{"-trusted-proxies= 192.0.2.1 , fd00::/8 ", "192.0.2.1 , fd00::/8"},
	} {
		args := []string{"-p=8080", "-cp=8085", "-murl=/sse"}
		if c.arg != "" {
			args = append(args, c.arg)
		}
		o, err := Parse(args)
		if err != nil {
			t.Fatalf("%q: %v", c.arg, err)
		}
		if o.TrustedProxies != c.want {
			t.Errorf("%q: %q, want %q", c.arg, o.TrustedProxies, c.want)
		}
	}
}

// Every numeric option has a range: its largest value is accepted, the
// next is refused with an error naming the option, and so is a value that
// would overflow where it is used.
func TestNumericBounds(t *testing.T) {
	base := []string{"-p=8080", "-cp=8085", "-murl=/sse"}
	cases := []struct{ name, max, over string }{
		{"max-conns-per-ip", "1073741824", "1073741825"},
		{"max-conns-per-proxy", "1073741824", "1073741825"},
		{"max-message", "1073741824", "1073741825"},
		{"max-lag", "1125899906842624", "1125899906842625"},
		{"loops", "1024", "1025"},
		{"max-tokens", "1073741824", "1073741825"},
		{"max-token-len", "1073741824", "1073741825"},
		{"max-conns", "1073741824", "1073741825"},
		{"sndbuf", "1073741824", "1073741825"},
		{"history-count", "1073741824", "1073741825"},
		{"history-bytes", "1125899906842624", "1125899906842625"},
		{"history-total-bytes", "1125899906842624", "1125899906842625"},
		{"cluster-log", "1073741824", "1073741825"},
		{"cluster-queue", "1073741824", "1073741825"},
		{"handshake-timeout", "86400", "86401"},
		{"lifetime", "8760h", "31536001"},
		{"heartbeat", "24h", "24h1s"},
		{"jwt-renew-before", "24h", "24h1s"},
		{"retry", "24h", "86401"},
		{"coalesce", "24h", "25h"},
		{"drain", "24h", "86401"},
		{"ctl-idle-gap", "24h", "86401"},
		{"ctl-max-conns", "1073741824", "1073741825"},
		{"ctl-idle-timeout", "24h", "86401"},
		{"history-age", "8760h", "8761h"},
		{"idempotency-window", "8760h", "8761h"},
		{"presence-grace", "24h", "86401"},
		{"presence-max", "1073741824", "1073741825"},
		{"pub-rate", "1000000", "1000001"},
		{"fifo-mode", "777", "1000"},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.name] = true
		if _, err := Parse(append(base, "-"+c.name+"="+c.max)); err != nil {
			t.Errorf("-%s=%s refused: %v", c.name, c.max, err)
		}
		for _, bad := range []string{c.over, "-1", "99999999999999999999", "NaN"} {
			_, err := Parse(append(base, "-"+c.name+"="+bad))
			if err == nil || !strings.Contains(err.Error(), "-"+c.name) {
				t.Errorf("-%s=%s: error %v, want one naming the option", c.name, bad, err)
			}
		}
	}
	if _, err := Parse(append(base, "-lifetime=18446744074")); err == nil { // was 0.26 s
		t.Error("-lifetime=18446744074 accepted")
	}
	if _, err := Parse(append(base, "-max-message=0")); err == nil {
		t.Error("-max-message=0 accepted")
	}
	// Every numeric option is in the table.
	v := reflect.TypeOf(Options{})
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Type.Kind() {
		case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Float64:
			if !covered[f.Tag.Get("opt")] {
				t.Errorf("-%s is numeric but has no bound test", f.Tag.Get("opt"))
			}
		}
	}
}

// A secret that is given but empty refuses the start: it would otherwise
// run the control port open.
func TestEmptyCtlSecret(t *testing.T) {
	base := []string{"-p=8080", "-cp=8085", "-murl=/sse"}
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("a-long-enough-secret\n"), 0o600)

	if _, err := Parse(append(base, "-ctl-secret-file="+empty)); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty -ctl-secret-file: %v", err)
	}
	if _, err := Parse(append(base, "-ctl-secret=")); err == nil {
		t.Error("empty -ctl-secret accepted")
	}
	t.Setenv("HASSES_CTL_SECRET", "")
	if _, err := Parse(base); err == nil || !strings.Contains(err.Error(), "HASSES_CTL_SECRET") {
		t.Errorf("empty HASSES_CTL_SECRET: %v", err)
	}
	// The file wins over an empty variable; the variable works when set.
	if o, err := Parse(append(base, "-ctl-secret-file="+good)); err != nil || o.CtlSecret != "a-long-enough-secret" {
		t.Errorf("file with empty variable: %v %+v", err, o)
	}
	t.Setenv("HASSES_CTL_SECRET", "from-the-environment")
	if o, err := Parse(base); err != nil || o.CtlSecret != "from-the-environment" {
		t.Errorf("variable: %v %+v", err, o)
	}
}

// A config file's errors name the file and line and show the line as it
// should be written.
func TestConfigFileErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hasses.conf")
	for line, want := range map[string]string{
		"p=8080":          `:1: "p=8080": write -p=8080 `,
		"-cp 8085":        `:1: "-cp 8085": write -cp=8085 `,
		"cp 8085":         `:1: "cp 8085": write -cp=8085 `,
		"-nope=1":         `:1: unknown option "-nope=1": one option per line, -name=value`,
		"-p":              `:1: option -p needs a value: -p=PORT`,
		"-ra=yes":         `:1: option -ra takes no value: write -ra alone`,
		"-heartbeat=soon": `:1: -heartbeat=soon: `,
		"-config=/x":      `:1: -config cannot be used in a config file`,
	} {
		os.WriteFile(path, []byte(line+"\n"), 0o644)
		_, err := Parse([]string{"-config=" + path})
		if err == nil || !strings.Contains(err.Error(), path+want) {
			t.Errorf("%q: %v, want %q", line, err, want)
		}
	}
}

// Check goes on past problems and lists every one, from the command line,
// the config file and the validation.
func TestCheckListsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hasses.conf")
	os.WriteFile(path, []byte("-bogus\n-heartbeat=soon\n-ssl\n"), 0o644)
	_, errs := Check([]string{"-check", "-config=" + path, "-nope", "-retry=x"})
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	got := strings.Join(all, "\n")
	for _, want := range []string{"unknown option -nope", ":1: unknown option \"-bogus\"", ":2: -heartbeat=soon", "option -retry", "missing -p", "missing -murl", "missing -cp or -fifo", "-ssl needs -cert-file"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	// Parse stops at the first.
	if _, err := Parse([]string{"-config=" + path, "-nope"}); err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("Parse: %v", err)
	}
}

// Effective is a config file that reads back to the same options, with the
// secrets hidden.
func TestEffective(t *testing.T) {
	o, err := Parse([]string{"-p=8080", "-cp=127.0.0.1:8085", "-murl=/s#x", "-ra", "-sep=|", "-pub-rate=2.5",
		"-ctl-secret=hunter2-long-enough-secret", "-cluster=redis://:pw@127.0.0.1:6379/0", "-heartbeat=1500ms"})
	if err != nil {
		t.Fatal(err)
	}
	eff := Effective(o)
	if strings.Contains(eff, "hunter2") || strings.Contains(eff, "pw@") || !strings.Contains(eff, "-ctl-secret=REDACTED") {
		t.Errorf("secrets shown:\n%s", eff)
	}
	// Put back a secret of the right length: the rest must read back alike.
	path := filepath.Join(t.TempDir(), "eff.conf")
	os.WriteFile(path, []byte(strings.Replace(eff, "-ctl-secret=REDACTED", "-ctl-secret=another-long-enough-secret", 1)), 0o644)
	again, err := Parse([]string{"-config=" + path})
	if err != nil {
		t.Fatalf("%v in\n%s", err, eff)
	}
	again.CtlSecret, again.Cluster, again.ConfigFile = o.CtlSecret, o.Cluster, o.ConfigFile
	if !reflect.DeepEqual(again, o) {
		t.Errorf("round trip:\n%+v\n%+v", o, again)
	}
}

// FuzzConfigFile feeds arbitrary config files to Check: it never panics,
// every problem names the file and a line (or is a validation message), and
// a file it accepts parses to valid options.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{
		"-p=8080\n-cp=8085\n-murl=/sse\n",
		"p 8080\n-ra=1\n-x\n# c\n-cors-base=a\\#b\n",
		"-user=a -admin=1\n-p\n-config=/x\n",
	} {
		f.Add(s)
	}
	path := filepath.Join(f.TempDir(), "fuzz.conf")
	f.Fuzz(func(t *testing.T, body string) {
		if strings.Contains(body, "secret-file") || strings.Contains(body, "-config") {
			return // reads other files
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		o, errs := Check([]string{"-config=" + path})
		if len(errs) == 0 && (o.Port == "" || o.MURL == "" || (o.CtlPort == "" && o.FIFO == "")) {
			t.Fatalf("accepted invalid options %+v from %q", o, body)
		}
		for _, err := range errs {
			if err.Error() == "" {
				t.Fatalf("empty problem for %q", body)
			}
		}
	})
}

func TestWebhookOptions(t *testing.T) {
	base := "-p=8080 -cp=8085 -murl=/sse "
	o, err := Parse(strings.Fields(base + "-webhook=https://u:pw@app.example/hook -webhook-secret-file=/etc/s -webhook-events=subscribe,,vacated"))
	if err != nil || o.Webhook != "https://u:pw@app.example/hook" || o.WebhookSecretFile != "/etc/s" || o.WebhookEvents != "subscribe,vacated" {
		t.Fatalf("%+v %v", o, err)
	}
	if eff := Effective(o); strings.Contains(eff, "pw") || !strings.Contains(eff, "-webhook=https://u:REDACTED@app.example/hook\n") {
		t.Fatalf("-check output shows the webhook password:\n%s", eff)
	}
	for _, bad := range []string{
		"-webhook=https://app.example/hook", // no secret
		"-webhook-secret-file=/etc/s",       // no URL
		"-webhook=ftp://app.example/ -webhook-secret-file=/etc/s",
		"-webhook=https://app.example/ -webhook-secret-file=/etc/s -webhook-events=join",
	} {
		if _, err := Parse(strings.Fields(base + bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
