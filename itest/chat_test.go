package itest

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestChatExample runs examples/chat against the real server and follows
// its page in headless Chromium: messages said through the page's backend
// show once, in order, and a page opened again resumes where it was.
func TestChatExample(t *testing.T) {
	d := start(t, "-presence=chat", "-presence-grace=1s")
	bin := filepath.Join(t.TempDir(), "chat")
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/chat").CombinedOutput(); err != nil {
		t.Fatalf("building the chat example: %v\n%s", err, out)
	}
	chat := exec.Command(bin, "-addr", "127.0.0.1:0", "-sse", "http://"+d.sse, "-ctl", d.ctl)
	stderr, _ := chat.StderrPipe()
	if err := chat.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chat.Process.Kill(); chat.Wait() })
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`chat on (http://\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1]
			}
		}
	}()
	var page string
	select {
	case page = <-addrs:
	case <-time.After(20 * time.Second):
		t.Fatal("the chat example did not start")
	}
	say := func(name, text string) {
		t.Helper()
		resp, err := http.PostForm(page+"/say", url.Values{"name": {name}, "text": {text}})
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("say %q: %v %v", text, err, resp)
		}
		resp.Body.Close()
	}

	ctx, cancel := context.WithTimeout(newChromium(t, context.Background()), 90*time.Second)
	defer cancel()
	shown := func() []string {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#log p.msg")].map(p => p.textContent)`))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	waitShown := func(want ...string) {
		t.Helper()
		var got []string
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if got = shown(); strings.Join(got, "|") == strings.Join(want, "|") {
				return
			}
		}
		t.Fatalf("page shows %q, want %q", got, want)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the page to subscribe", func() bool {
		return strings.Contains(d.command("tcpsubscribedclients:chat"), `"subscribedclients": 1,`)
	})
	// Who is online: this tab, then a second client, which then leaves.
	onlineShows := func(what string, want *regexp.Regexp) {
		t.Helper()
		var got string
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			var err error
			got, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("online").textContent`))
			if err != nil {
				t.Fatal(err)
			}
			if want.MatchString(got) {
				return
			}
		}
		t.Fatalf("%s: the page shows %q, want %s", what, got, want)
	}
	onlineShows("this tab", regexp.MustCompile(`^1 online: tab-\w+$`))
	other := d.subscribe("?subscribe=chat&id=zed")
	onlineShows("a join", regexp.MustCompile(`^2 online: tab-\w+, zed$`))
	other.c.Close()
	onlineShows("a leave", regexp.MustCompile(`^1 online: tab-\w+$`))

	say("alice", "hello")
	say("bob", "hi alice")
	waitShown("alice: hello", "bob: hi alice")
	// The page's own form, as a person fills it in.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("name").value = "carol";
		document.getElementById("text").value = "from the page";
		document.querySelector("button").click(); true`)); err != nil {
		t.Fatal(err)
	}
	waitShown("alice: hello", "bob: hi alice", "carol: from the page")
	// Leaving the page and coming back resumes after the last message
	// seen: what was said meanwhile shows, nothing shows twice.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the page to leave", func() bool {
		return strings.Contains(d.command("tcpsubscribedclients:chat"), `"subscribedclients": 0,`)
	})
	say("alice", "while you were away")
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	waitShown("alice: while you were away")
}
