package dashboard

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"time"
)

//go:embed assets
var assets embed.FS

var loginPage = template.Must(template.ParseFS(assets, "assets/login.html"))

// writeTimeout bounds one write to a live page, so a stuck viewer cannot
// hold its goroutine forever.
const writeTimeout = 10 * time.Second

// Handler serves the page at /, its script and style under /dashboard/, and
// the live feed at /dashboard/events. Access control is the caller's.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", serveAsset("assets/index.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /dashboard/app.js", serveAsset("assets/app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /dashboard/app.css", serveAsset("assets/app.css", "text/css; charset=utf-8"))
	mux.HandleFunc("GET /dashboard/events", d.events)
	return mux
}

// secure sets the headers of every page and asset: nothing but this
// origin's own files runs, and nobody may frame the page.
func secure(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "+
		"img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func serveAsset(name, contentType string) http.HandlerFunc {
	body, err := fs.ReadFile(assets, name)
	if err != nil {
		panic(err) // embedded at build time: a missing file is a build mistake
	}
	return func(w http.ResponseWriter, r *http.Request) {
		secure(w.Header())
		w.Header().Set("Content-Type", contentType)
		w.Write(body)
	}
}

// Login writes the login form with status (401 when credentials are
// missing or wrong); failed adds "wrong secret".
func Login(w http.ResponseWriter, status int, failed bool) {
	secure(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	loginPage.Execute(w, struct{ Failed bool }{failed})
}

// events is the live feed: an "init" event with the settings and the whole
// window, then a "sample" event at every sample, until the page goes away or
// the dashboard stops.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
	if int(d.viewers.Add(1)) > d.cfg.Viewers {
		d.viewers.Add(-1)
		http.Error(w, "too many live dashboards open", http.StatusServiceUnavailable)
		return
	}
	defer d.viewers.Add(-1)
	h := w.Header()
	secure(h)
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	send := func(event string, data []byte) error {
		rc.SetWriteDeadline(time.Now().Add(writeTimeout)) // unsupported by some writers: then unbounded
		w.Write([]byte("event: " + event + "\ndata: "))
		w.Write(data)
		if _, err := w.Write([]byte("\n\n")); err != nil {
			return err
		}
		return rc.Flush()
	}
	snap, seq, tick := d.subscribe()
	w.Write([]byte("retry: 2000\n"))
	if send("init", snap) != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.done:
			return
		case <-tick:
		}
		events, init, newest, next := d.since(seq)
		if init != nil && send("init", init) != nil {
			return
		}
		for _, ev := range events {
			if send("sample", ev) != nil {
				return
			}
		}
		seq, tick = newest, next
	}
}
