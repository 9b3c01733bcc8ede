package main

import (
	"context"
	"errors"
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
	// The default is read after parsing, so that -h never prints the secret.
	secret := fs.String("secret", "", "publisher secret (default $HASSES_CTL_SECRET)")
	event := fs.String("event", "", "SSE event name")
	exclude := fs.String("exclude", "", "client id that must not receive it")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this")
	// Errors get one line and a pointer to -h, as for the server.
	fs.SetOutput(io.Discard)
	usageError := func(err error) int {
		fmt.Fprintf(os.Stderr, "hasses publish: %v\nrun 'hasses publish -h' for the options\n", err)
		return 2
	}
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		fmt.Print("Usage: hasses publish [-to URL] [-secret S] [-event NAME] [-exclude ID] TOKEN[,TOKEN...] [MESSAGE]\n" +
			"Without MESSAGE, the message is read from standard input.\n\n")
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		return 0
	case err != nil:
		return usageError(err)
	case fs.NArg() < 1:
		return usageError(errors.New("missing the token(s)"))
	case fs.NArg() > 2:
		return usageError(fmt.Errorf("unexpected argument %q (quote the message)", fs.Arg(2)))
	}
	if *secret == "" {
		*secret = os.Getenv("HASSES_CTL_SECRET")
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
