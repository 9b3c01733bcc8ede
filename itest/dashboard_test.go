package itest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardInBrowser logs in to the admin dashboard in headless
// Chromium, publishes, and waits until the page, fed by its own
// EventSource, shows events per second and the busiest token by name. The
// screenshot is kept as a CI artifact (dashboard.png).
func TestDashboardInBrowser(t *testing.T) {
	const secret = "dash-test-secret-0123456789"
	d := start(t, "-admin=127.0.0.1:0", "-pub=127.0.0.1:0", "-ctl-secret="+secret)
	for _, tok := range []string{"news", "news", "news", "sports", "sports", "weather"} {
		d.subscribe("?subscribe=" + tok)
	}

	ctx := newChromium(t, context.Background(), chromedp.WindowSize(1440, 1000))
	ctx, cancelTimeout := context.WithTimeout(ctx, 150*time.Second)
	defer cancelTimeout()

	began := time.Now()
	// Without the secret the page is the login form; the form sets the
	// cookie that the dashboard's EventSource then carries.
	if err := chromedp.Do(ctx,
		chromedp.Navigate("http://"+d.adm+"/"),
		chromedp.WaitVisible(chromedp.ID("secret")),
	); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		saveArtifact(t, "dashboard-login.png", shot)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("secret"), secret),
		chromedp.Submit(chromedp.ID("secret")),
		chromedp.WaitVisible(chromedp.ID("in-rate")),
	); err != nil {
		t.Fatalf("logging in: %v", err)
	}
	t.Logf("browser started and logged in after %v", time.Since(began).Round(time.Millisecond))

	// Publish until the page shows it: "news" busiest, a steady trickle to
	// the others, and a few refused publishers for the refusal chart.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	wg.Go(func() {
		publish := func(tok, auth string) {
			req, _ := http.NewRequest("POST", "http://"+d.pub+"/publish",
				strings.NewReader(fmt.Sprintf(`{"token":%q,"data":"hello"}`, tok)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+auth)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			publish("news", secret)
			if i%3 == 0 {
				publish("sports", secret)
			}
			if i%10 == 0 {
				publish("weather", secret)
			}
			if i%40 == 7 {
				publish("news", "wrong")
			}
		}
	})

	type view struct {
		In, Out       float64
		Streams       float64
		TopRate, Subs string
		Samples       int
		Errors        []string
	}
	var v view
	deadline := time.Now().Add(60 * time.Second) // generous: CI machines are shared
	for {
		var err error
		v, err = chromedp.Run(ctx, chromedp.Evaluate[view](`({
			In: Number(document.getElementById("in-rate").dataset.value || 0),
			Out: Number(document.getElementById("out-rate").dataset.value || 0),
			Streams: Number(document.getElementById("streams").dataset.value || 0),
			TopRate: document.getElementById("top-rate").textContent,
			Subs: document.getElementById("top-subs").textContent,
			Samples: state.samples.length,
			Errors: window.dashboardErrors,
		})`))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		// Several samples, so the screenshot shows lines rather than dots.
		done := v.In > 0 && v.Out > 0 && strings.HasPrefix(v.TopRate, "news") && strings.HasPrefix(v.Subs, "news") && v.Samples >= 6
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}

	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		saveArtifact(t, "dashboard.png", shot)
	}

	if v.In <= 0 || v.Out <= 0 {
		t.Errorf("the page shows %v events in /s and %v out /s, want both above 0", v.In, v.Out)
	}
	if !strings.HasPrefix(v.TopRate, "news") {
		t.Errorf("top tokens by events /s: %q, want news first", v.TopRate)
	}
	if !strings.HasPrefix(v.Subs, "news") || !strings.Contains(v.Subs, "sports") {
		t.Errorf("top tokens by subscribers: %q, want news, then sports", v.Subs)
	}
	if len(v.Errors) > 0 {
		t.Errorf("script errors on the page: %q", v.Errors)
	}
	if v.Streams != 6 {
		t.Errorf("the page shows %v streams, want 6", v.Streams)
	}
	t.Logf("page after %v: %+v", time.Since(began).Round(time.Millisecond), v)
}

// saveArtifact keeps a file for CI under $HASSES_ARTIFACTS (default
// itest/artifacts).
func saveArtifact(t *testing.T, name string, b []byte) {
	dir := os.Getenv("HASSES_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err == nil {
		abs, _ := filepath.Abs(path)
		t.Logf("screenshot: %s", abs)
	}
}
