package server

import (
	"net"
	"os"
	"testing"
)

func TestNodeName(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Skip("no host name")
	}
	for addr, want := range map[string]string{
		"[::]:8080":      net.JoinHostPort(host, "8080"),
		"0.0.0.0:8081":   net.JoinHostPort(host, "8081"),
		"10.0.0.7:8080":  "10.0.0.7:8080",
		"[fe80::1]:8080": "[fe80::1]:8080",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := nodeName(a); got != want {
			t.Errorf("nodeName(%s) = %q, want %q", addr, got, want)
		}
	}
}
