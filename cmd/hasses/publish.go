package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hasses-go/hasses/publish"
)

// runPublish is "hasses publish": a message from the command line or stdin
// to the HTTP API (http://...) or the control port (tcp://host:port).
func runPublish(args []string) int {
	fs := flag.NewFlagSet("hasses publish", flag.ContinueOnError)
	to := fs.String("to", "http://127.0.0.1:8086/publish", "publish API URL (http://HOST:PORT, /publish implied), or tcp://HOST:PORT for the control port")
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
	target, err := publishTarget(*to)
	if err != nil {
		return usageError(err)
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
	if addr, ok := strings.CutPrefix(target, "tcp://"); ok {
		res, err = publish.PublishTCP(ctx, addr, *secret, m)
	} else {
		res, err = (&publish.Client{URL: target, Secret: *secret}).Publish(ctx, m)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hasses publish:", explain(err, target, toSet(fs)))
		return 1
	}
	fmt.Printf("id %s, %d receivers\n", strings.Join(res.IDs, ","), res.Receivers)
	return 0
}

// publishTarget checks -to: tcp://HOST:PORT, or an http(s) URL, where a
// missing path means /publish.
func publishTarget(to string) (string, error) {
	scheme, rest, ok := strings.Cut(to, "://")
	if !ok {
		return "", fmt.Errorf("-to=%s has no scheme: say -to=tcp://%s for the control port, or -to=http://%s/publish for the publish API", to, to, to)
	}
	switch scheme {
	case "tcp":
		if _, _, err := net.SplitHostPort(rest); err != nil {
			return "", fmt.Errorf("-to=%s: want tcp://HOST:PORT: %v", to, err)
		}
		return to, nil
	case "http", "https":
		u, err := url.Parse(to)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("-to=%s: want http://HOST:PORT/publish", to)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/publish"
		}
		return u.String(), nil
	}
	return "", fmt.Errorf("-to=%s: unknown scheme %q: use tcp:// (control port) or http:// (publish API)", to, scheme)
}

// toSet reports whether -to was given.
func toSet(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "to" })
	return set
}

// explain turns a connection failure into what to check.
func explain(err error, target string, explicit bool) string {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return err.Error()
	}
	reason := op.Err.Error()
	if errors.Is(err, syscall.ECONNREFUSED) {
		reason = "connection refused"
	}
	msg := fmt.Sprintf("cannot connect to %s (%s): is hasses running", target, reason)
	if addr, ok := strings.CutPrefix(target, "tcp://"); ok {
		msg += " with -cp=" + addr + "?"
	} else if u, err := url.Parse(target); err == nil {
		msg += " with -pub=" + u.Host + "?"
	}
	if !explicit {
		msg += " Without -to, hasses publish uses " + target + "; name the server with -to=tcp://HOST:PORT (control port) or -to=http://HOST:PORT/publish (publish API)."
	}
	return msg
}
