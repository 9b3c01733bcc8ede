package itest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// proxyProc is a real reverse proxy (Debian's nginx or apache2) running
// from a config in a temporary directory, on loopback ports.
type proxyProc struct {
	name    string
	addr    string // plain HTTP/1.1 listener, host:port
	tlsAddr string // TLS listener with HTTP/2, host:port
	// shortAddr is a plain listener whose proxy read timeout is 3 s,
	// with /hb/ in front of hasses -heartbeat=1s and /nohb/ in front of
	// the default heartbeat.
	shortAddr string
	dir       string
	cmd       *exec.Cmd
	outFile   string // the proxy's standard output and error
	done      chan struct{}
	errorLog  string
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// proxyVars fill the config templates.
type proxyVars struct {
	Dir, Port, TLSPort string
	ShortPort          string
	Cert, Key          string
	Main, HB, KA       string   // upstream host:port of the three hasses
	Nodes              []string // upstream host:port of the cluster's nodes
	Root               bool     // running as root: the proxy must drop to a user
}

// runProxy writes conf from tmpl and starts the proxy; argv gets the
// config path appended by the caller's closure.
func runProxy(t *testing.T, name, tmpl string, v proxyVars, argv func(conf string) []string) *proxyProc {
	t.Helper()
	conf := filepath.Join(v.Dir, name+".conf")
	var b bytes.Buffer
	if err := template.Must(template.New(name).Parse(tmpl)).Execute(&b, v); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	args := argv(conf)
	p := &proxyProc{name: name, addr: "127.0.0.1:" + v.Port, tlsAddr: "127.0.0.1:" + v.TLSPort,
		shortAddr: "127.0.0.1:" + v.ShortPort, dir: v.Dir,
		outFile: filepath.Join(v.Dir, name+".out"), done: make(chan struct{}), errorLog: filepath.Join(v.Dir, "error.log")}
	p.cmd = exec.Command(args[0], args[1:]...)
	// A file, not a pipe: Wait would wait for every worker holding it.
	out, err := os.Create(filepath.Join(v.Dir, name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its workers are stopped with it
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-p.done:
			t.Fatalf("%s exited at start:\n%s\n%s", name, p.output(), p.errors())
		default:
		}
		listening := true
		for _, port := range []string{v.Port, v.TLSPort, v.ShortPort} {
			if port == "" {
				continue // a config without that listener
			}
			c, err := net.Dial("tcp", "127.0.0.1:"+port)
			if err != nil {
				listening = false
				break
			}
			c.Close()
		}
		if listening {
			return p
		}
		if time.Now().After(end) {
			t.Fatalf("%s did not listen on %s, %s and %s:\n%s\n%s", name, p.addr, p.tlsAddr, p.shortAddr, p.output(), p.errors())
		}
	}
}

// output returns what the proxy wrote to standard output and error.
func (p *proxyProc) output() string {
	b, _ := os.ReadFile(p.outFile)
	return tail(string(b), 2000)
}

// errors returns the proxy's error log.
func (p *proxyProc) errors() string {
	b, _ := os.ReadFile(p.errorLog)
	return tail(string(b), 4000)
}

// stop ends the proxy: SIGTERM to the master, and SIGKILL to its process
// group if it is not gone within a second (Apache's workers wait on their
// upstream streams for seconds before they give up).
func (p *proxyProc) stop() {
	pgid := p.cmd.Process.Pid
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	syscall.Kill(-pgid, syscall.SIGKILL) // workers that outlived their master, if any
}

// nginxConf is the test's nginx configuration. Location /sse is the recipe
// of docs/operations.md, the seed's exactly (no X-Forwarded-For: every
// stream counts under -max-conns-per-proxy); /hb/ adds X-Forwarded-For, as
// the docs recommend; the other locations vary one thing each.
const nginxConf = `
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;
events {
    worker_connections 8192;
}
http {
    access_log off;
    client_body_temp_path {{.Dir}}/body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;

    upstream ssebackend {
        server {{.Main}};
        keepalive 3200;
    }
    upstream ssebackend_hb {
        server {{.HB}};
        keepalive 16;
    }
    upstream ssebackend_ka {
        server {{.KA}};
        keepalive 16;
    }

    server {
        listen 127.0.0.1:{{.Port}};
        listen 127.0.0.1:{{.TLSPort}} ssl http2;
        server_name localhost;
        ssl_certificate {{.Cert}};
        ssl_certificate_key {{.Key}};

        # The recipe.
        location /sse {
            proxy_buffering off;
            proxy_cache off;
            keepalive_timeout 0;
            proxy_set_header Connection "Keep-Alive";
            proxy_http_version 1.1;
            chunked_transfer_encoding on;
            proxy_pass http://ssebackend;
        }
        # Upstream keep-alive in front of hasses -ra -lifetime=2s.
        location /ka/ {
            proxy_buffering off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://ssebackend_ka/;
        }
        # No proxy_http_version: nginx speaks HTTP/1.0 to hasses.
        location /h10/ {
            proxy_buffering off;
            proxy_pass http://ssebackend/;
        }
    }
    server {
        listen 127.0.0.1:{{.ShortPort}};
        server_name localhost;
        proxy_read_timeout 3s;
        # In front of hasses -heartbeat=1s ...
        location /hb/ {
            proxy_buffering off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_pass http://ssebackend_hb/;
        }
        # ... and in front of the default heartbeat (20 s): cut.
        location /nohb/ {
            proxy_buffering off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://ssebackend/;
        }
    }
}
`

// startNginx runs the nginx binary at path with nginxConf.
func startNginx(t *testing.T, path string, v proxyVars) *proxyProc {
	return runProxy(t, "nginx", nginxConf, v, func(conf string) []string {
		// -e: the error log before the config is read (else /var/log/nginx).
		return []string{path, "-p", v.Dir, "-e", filepath.Join(v.Dir, "error.log"), "-c", conf}
	})
}

// nginxClusterConf is the recipe of docs/cluster.md ("Three nodes behind
// nginx on one Redis") with the test's paths and loopback ports, and two
// workers that share the balancer's state (zone).
const nginxClusterConf = `
daemon off;
master_process on;
worker_processes 2;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log off;
    client_body_temp_path {{.Dir}}/body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;

    upstream hasses {
        zone hasses 64k;
{{- range .Nodes}}
        server {{.}} max_fails=1 fail_timeout=5s;
{{- end}}
        least_conn;
    }
    server {
        listen 127.0.0.1:{{.Port}};
        location /sse {
            proxy_pass http://hasses;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout;
        }
    }
}
`

// startNginxCluster runs the nginx binary at path with nginxClusterConf.
func startNginxCluster(t *testing.T, path string, v proxyVars) *proxyProc {
	return runProxy(t, "nginx", nginxClusterConf, v, func(conf string) []string {
		return []string{path, "-p", v.Dir, "-e", filepath.Join(v.Dir, "error.log"), "-c", conf}
	})
}

// apacheConf is the test's Apache configuration. /sse is the recipe of
// docs/operations.md (the seed recipe); mod_proxy adds X-Forwarded-For by
// itself.
const apacheConf = `
ServerRoot "{{.Dir}}"
ServerName localhost
PidFile {{.Dir}}/apache2.pid
ErrorLog {{.Dir}}/error.log
LogLevel warn
DefaultRuntimeDir {{.Dir}}
{{if .Root}}User nobody
Group nogroup
{{end}}
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
LoadModule http2_module /usr/lib/apache2/modules/mod_http2.so

# One worker thread per open stream: room for 1,100 and more.
StartServers 20
ServerLimit 20
ThreadLimit 64
ThreadsPerChild 64
MaxRequestWorkers 1280
MinSpareThreads 64
MaxSpareThreads 1280

SSLSessionCache shmcb:{{.Dir}}/ssl_scache(512000)

Listen 127.0.0.1:{{.Port}}
Listen 127.0.0.1:{{.TLSPort}} https
Listen 127.0.0.1:{{.ShortPort}}

<VirtualHost 127.0.0.1:{{.Port}}>
    ProxyPreserveHost On
    ProxyPass /sse http://{{.Main}}/sse
    ProxyPassReverse /sse http://{{.Main}}/sse
    ProxyPass /ka/ http://{{.KA}}/
</VirtualHost>

# A short read timeout (a server of its own: workers, and so their
# timeouts, are shared by every ProxyPass to the same backend in a server).
<VirtualHost 127.0.0.1:{{.ShortPort}}>
    ProxyTimeout 3
    ProxyPass /hb/ http://{{.HB}}/
    ProxyPass /nohb/ http://{{.Main}}/
</VirtualHost>

<VirtualHost 127.0.0.1:{{.TLSPort}}>
    SSLEngine on
    SSLCertificateFile {{.Cert}}
    SSLCertificateKeyFile {{.Key}}
    Protocols h2 http/1.1
    ProxyPreserveHost On
    ProxyPass /sse http://{{.Main}}/sse
    ProxyPassReverse /sse http://{{.Main}}/sse
</VirtualHost>
`

// startApache runs the apache2 binary at path with apacheConf.
func startApache(t *testing.T, path string, v proxyVars) *proxyProc {
	return runProxy(t, "apache2", apacheConf, v, func(conf string) []string {
		return []string{path, "-d", v.Dir, "-f", conf, "-DFOREGROUND"}
	})
}
