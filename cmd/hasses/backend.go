package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hasses-go/hasses/publish"
)

// runHistory is "hasses history": what a token's stream holds, from the
// publish API's GET /history, printed as its JSON answer.
func runHistory(args []string) int {
	fs := flag.NewFlagSet("hasses history", flag.ContinueOnError)
	to := fs.String("to", "http://127.0.0.1:8086/publish", "publish API URL (its /history beside /publish is read)")
	secret := fs.String("secret", "", "publisher secret (default $HASSES_CTL_SECRET)")
	after := fs.String("after", "", "an event id: the events after it (default: the newest -limit events)")
	limit := fs.Int("limit", 100, "events at most, 0 to 1000; 0 prints only the position (last_id)")
	id := fs.String("id", "", "a stream's client id: leave out the events that exclude it")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this")
	fs.SetOutput(io.Discard)
	usageError := func(err error) int {
		fmt.Fprintf(os.Stderr, "hasses history: %v\nrun 'hasses history -h' for the options\n", err)
		return 2
	}
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		fmt.Print("Usage: hasses history [-to URL] [-secret S] [-after ID] [-limit N] [-id CLIENT] TOKEN[,TOKEN...]\n" +
			"Prints the GET /history answer: the events a stream subscribed to the tokens replays after -after.\n\n")
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		return 0
	case err != nil:
		return usageError(err)
	case fs.NArg() != 1:
		return usageError(errors.New("give the token(s), comma-separated, and nothing else"))
	}
	if *secret == "" {
		*secret = os.Getenv("HASSES_CTL_SECRET")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	h, err := (&publish.Client{URL: *to, Secret: *secret}).History(ctx,
		publish.HistoryQuery{Tokens: strings.Split(fs.Arg(0), ","), After: *after, Limit: *limit, ID: *id})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hasses history:", err)
		return 1
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.Encode(h)
	return 0
}

// runDisconnect is "hasses disconnect": ends the streams of a client id, a
// user or a token (POST /disconnect).
func runDisconnect(args []string) int {
	fs := flag.NewFlagSet("hasses disconnect", flag.ContinueOnError)
	to := fs.String("to", "http://127.0.0.1:8086/publish", "publish API URL (its /disconnect beside /publish is used)")
	secret := fs.String("secret", "", "publisher secret (default $HASSES_CTL_SECRET)")
	var d publish.Disconnect
	fs.StringVar(&d.ID, "id", "", "end the streams of this client id")
	fs.StringVar(&d.User, "user", "", "end the streams of this user (a subscriber token's sub)")
	fs.StringVar(&d.Token, "token", "", "end the streams subscribed to this token")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this")
	fs.SetOutput(io.Discard)
	usageError := func(err error) int {
		fmt.Fprintf(os.Stderr, "hasses disconnect: %v\nrun 'hasses disconnect -h' for the options\n", err)
		return 2
	}
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		fmt.Print("Usage: hasses disconnect [-to URL] [-secret S] [-id ID] [-user USER] [-token TOKEN]\n" +
			"Ends the matching streams on every node; they get a hasses-disconnect event and may reconnect.\n\n")
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		return 0
	case err != nil:
		return usageError(err)
	case fs.NArg() != 0:
		return usageError(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case d == publish.Disconnect{}:
		return usageError(errors.New("say whose streams: -id, -user or -token"))
	}
	if *secret == "" {
		*secret = os.Getenv("HASSES_CTL_SECRET")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	n, err := (&publish.Client{URL: *to, Secret: *secret}).Disconnect(ctx, d)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hasses disconnect:", err)
		return 1
	}
	fmt.Printf("%d streams ended\n", n)
	return 0
}

// runRevoke is "hasses revoke": refuses a user's subscriber tokens issued
// until now and ends their streams (POST /revoke), or lists the
// revocations in force (-list).
func runRevoke(args []string) int {
	fs := flag.NewFlagSet("hasses revoke", flag.ContinueOnError)
	to := fs.String("to", "http://127.0.0.1:8086/publish", "publish API URL (its /revoke beside /publish is used)")
	secret := fs.String("secret", "", "publisher secret (default $HASSES_CTL_SECRET)")
	until := fs.String("until", "", "RFC 3339 time the revocation lasts until (default: a day, the most)")
	list := fs.Bool("list", false, "list the revocations in force instead")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this")
	fs.SetOutput(io.Discard)
	usageError := func(err error) int {
		fmt.Fprintf(os.Stderr, "hasses revoke: %v\nrun 'hasses revoke -h' for the options\n", err)
		return 2
	}
	var end time.Time
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		fmt.Print("Usage: hasses revoke [-to URL] [-secret S] [-until TIME] USER\n       hasses revoke -list\n" +
			"Refuses USER's subscriber tokens issued until now and ends their streams on every node.\n\n")
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		return 0
	case err != nil:
		return usageError(err)
	case *list && fs.NArg() != 0, !*list && fs.NArg() != 1:
		return usageError(errors.New("give one user (the tokens' sub), or -list"))
	case *until != "":
		if end, err = time.Parse(time.RFC3339, *until); err != nil {
			return usageError(fmt.Errorf("-until: %w", err))
		}
	}
	if *secret == "" {
		*secret = os.Getenv("HASSES_CTL_SECRET")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c := &publish.Client{URL: *to, Secret: *secret}
	if *list {
		l, err := c.Revocations(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hasses revoke:", err)
			return 1
		}
		for _, r := range l {
			fmt.Printf("%s until %s\n", r.User, r.Until.UTC().Format(time.RFC3339))
		}
		return 0
	}
	n, err := c.Revoke(ctx, fs.Arg(0), end)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hasses revoke:", err)
		return 1
	}
	fmt.Printf("%s revoked, %d streams ended\n", fs.Arg(0), n)
	return 0
}
