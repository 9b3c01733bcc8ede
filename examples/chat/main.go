// Command chat is a small chat room on hasses: a static page that follows
// the room with hasses.js, and a tiny backend that publishes what people
// say through the control port. With the server of the README's first
// command running:
//
//	go run ./examples/chat            # then open http://localhost:8000
//
// Every tab sees every message once, in order, and a tab that reloads or
// loses its connection misses nothing (hasses.js resumes from its last id).
// With the server started with -presence=chat, the page also shows who is
// online (hasses-presence, hasses-join and hasses-leave events).
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hasses-go/hasses/publish"
)

//go:embed index.html
var page string

func main() {
	addr := flag.String("addr", "localhost:8000", "where the chat page is served")
	sse := flag.String("sse", "http://localhost:8080", "the hasses SSE port, as the browser reaches it")
	ctl := flag.String("ctl", "127.0.0.1:8085", "the hasses control port")
	room := flag.String("room", "chat", "the token the room's messages go to")
	flag.Parse()

	http.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, strings.NewReplacer("{{SSE}}", *sse, "{{ROOM}}", *room).Replace(page))
	})
	// The backend's one job: check what is said and publish it.
	http.HandleFunc("POST /say", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimSpace(r.FormValue("name"))
		text := strings.TrimSpace(r.FormValue("text"))
		if name == "" || text == "" || len(name) > 40 || len(text) > 2000 || !utf8.ValidString(name+text) {
			http.Error(w, "a name (at most 40 bytes) and a message (at most 2000) are needed", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		// One line per message: the page shows "name: text".
		m := publish.Message{Token: *room, Event: "say", Data: strings.ReplaceAll(name+": "+text, "\n", " ")}
		if _, err := publish.PublishTCP(ctx, *ctl, "", m); err != nil {
			http.Error(w, "publishing failed: "+err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("chat on http://%s (hasses at %s, control port %s, room %q)", ln.Addr(), *sse, *ctl, *room)
	log.Fatal(http.Serve(ln, nil))
}
