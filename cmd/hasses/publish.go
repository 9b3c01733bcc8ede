package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hasses-go/hasses/publish"
)

// runPublish is "hasses publish": a message from the command line or stdin
// to the HTTP API (http://...) or the control port (tcp://host:port).
func runPublish(args []string) int {
	fs := flag.NewFlagSet("hasses publish", flag.ContinueOnError)
	to := fs.String("to", "http://127.0.0.1:8086/publish", "publish API URL, or tcp://HOST:PORT for the control port")
	secret := fs.String("secret", os.Getenv("HASSES_CTL_SECRET"), "publisher secret (default $HASSES_CTL_SECRET)")
	event := fs.String("event", "", "SSE event name")
	exclude := fs.String("exclude", "", "client id that must not receive it")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: hasses publish [-to URL] [-secret S] [-event NAME] [-exclude ID] TOKEN[,TOKEN...] [MESSAGE]\n"+
			"Without MESSAGE, the message is read from standard input.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return 2
	}
	m := publish.Message{Tokens: strings.Split(fs.Arg(0), ","), Event: *event, Exclude: *exclude}
	if fs.NArg() == 2 {
		m.Data = fs.Arg(1)
	} else {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
		if err != nil {
			fmt.Fprintln(os.Stderr, "hasses publish: reading stdin:", err)
			return 1
		}
		m.Data = strings.TrimSuffix(string(b), "\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var res *publish.Result
	var err error
	if addr, ok := strings.CutPrefix(*to, "tcp://"); ok {
		res, err = publish.PublishTCP(ctx, addr, *secret, m)
	} else {
		res, err = (&publish.Client{URL: *to, Secret: *secret}).Publish(ctx, m)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hasses publish:", err)
		return 1
	}
	fmt.Printf("id %s, %d receivers\n", strings.Join(res.IDs, ","), res.Receivers)
	return 0
}
