package config

import (
	"errors"
	"os"
	"path/filepath"
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
	} {
		if _, err := Parse(strings.Fields(args)); err == nil || errors.Is(err, ErrHelp) {
			t.Errorf("%q: no usage error", args)
		}
	}
	if _, err := Parse([]string{"-h"}); !errors.Is(err, ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	if _, err := Parse([]string{"-v"}); !errors.Is(err, ErrVersion) {
		t.Errorf("-v: %v", err)
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

func TestUsageMentionsEveryOption(t *testing.T) {
	u := Usage()
	for _, o := range options {
		if !strings.Contains(u, "-"+o.name) {
			t.Errorf("usage lacks -%s", o.name)
		}
	}
}
