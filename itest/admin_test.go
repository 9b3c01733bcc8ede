package itest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAdminMetricsAndHealth(t *testing.T) {
	d := start(t, "-admin=127.0.0.1:0", "-pub=127.0.0.1:0")
	s := d.subscribe("?subscribe=m")
	d.send("m=one;m=two")
	s.expect("one", "two")
	http.Post("http://"+d.pub+"/publish", "application/json", strings.NewReader(`{"token":"m","data":"`+strings.Repeat("x", 70000)+`"}`))

	get := func(path string) string {
		resp, err := http.Get("http://" + d.adm + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		return string(b)
	}
	if got := get("/healthz"); got != "ok\n" {
		t.Errorf("healthz %q", got)
	}
	m := get("/metrics")
	for _, want := range []string{
		"hasses_streams 1", "hasses_deliveries_total 2", "hasses_published_total 2",
		`hasses_publish_refused_total{reason="too_large"} 1`, "go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
