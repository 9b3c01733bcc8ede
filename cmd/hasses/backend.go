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

// apiCmd is what the subcommands that call the publish API share: -to,
// -secret and -timeout, the usage text, and the exit codes (0 done, 1 the
// call failed, 2 a usage error).
type apiCmd struct {
	name, usage string
	fs          *flag.FlagSet
	to, secret  *string
	timeout     *time.Duration
	ctx         context.Context
	cancel      context.CancelFunc
	client      *publish.Client
	exit        int
}

func newAPICmd(name, endpoint, usage string) *apiCmd {
	c := &apiCmd{name: "hasses " + name, usage: usage}
	c.fs = flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.to = c.fs.String("to", "http://127.0.0.1:8086/publish", "publish API URL (its "+endpoint+" beside /publish is used)")
	c.secret = c.fs.String("secret", "", "publisher secret (default $HASSES_CTL_SECRET)")
	c.timeout = c.fs.Duration("timeout", 10*time.Second, "give up after this")
	c.fs.SetOutput(io.Discard)
	return c
}

// parse parses args and checks them with check (nil: fine). It reports
// false when the command is over, with c.exit set; else the client and
// its context are ready (call c.cancel when done).
func (c *apiCmd) parse(args []string, check func() error) bool {
	err := c.fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Print(c.usage + "\n\n")
		c.fs.SetOutput(os.Stdout)
		c.fs.PrintDefaults()
		c.exit = 0
		return false
	}
	if err == nil && check != nil {
		err = check()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\nrun '%s -h' for the options\n", c.name, err, c.name)
		c.exit = 2
		return false
	}
	if *c.secret == "" {
		*c.secret = os.Getenv("HASSES_CTL_SECRET")
	}
	c.ctx, c.cancel = context.WithTimeout(context.Background(), *c.timeout)
	c.client = &publish.Client{URL: *c.to, Secret: *c.secret}
	return true
}

// fail reports a failed call.
func (c *apiCmd) fail(err error) int {
	fmt.Fprintf(os.Stderr, "%s: %v\n", c.name, err)
	return 1
}

func printJSON(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// runHistory is "hasses history": what a token's stream holds, from the
// publish API's GET /history, printed as its JSON answer.
func runHistory(args []string) int {
	c := newAPICmd("history", "/history", "Usage: hasses history [-to URL] [-secret S] [-after ID] [-limit N] [-id CLIENT] TOKEN[,TOKEN...]\n"+
		"Prints the GET /history answer: the events a stream subscribed to the tokens replays after -after.")
	after := c.fs.String("after", "", "an event id: the events after it (default: the newest -limit events)")
	limit := c.fs.Int("limit", 100, "events at most, 0 to 1000; 0 prints only the position (last_id)")
	id := c.fs.String("id", "", "a stream's client id: leave out the events that exclude it")
	if !c.parse(args, oneArg(c.fs, "give the token(s), comma-separated, and nothing else")) {
		return c.exit
	}
	defer c.cancel()
	h, err := c.client.History(c.ctx, publish.HistoryQuery{Tokens: strings.Split(c.fs.Arg(0), ","), After: *after, Limit: *limit, ID: *id})
	if err != nil {
		return c.fail(err)
	}
	printJSON(h)
	return 0
}

// runPresence is "hasses presence": who is subscribed to tokens, on every
// node (GET /presence), printed as its JSON answer.
func runPresence(args []string) int {
	c := newAPICmd("presence", "/presence", "Usage: hasses presence [-to URL] [-secret S] TOKEN[,TOKEN...]\n"+
		"Prints the GET /presence answer: the streams and clients subscribed to each token.")
	if !c.parse(args, oneArg(c.fs, "give the token(s), comma-separated, and nothing else")) {
		return c.exit
	}
	defer c.cancel()
	p, err := c.client.Presence(c.ctx, strings.Split(c.fs.Arg(0), ",")...)
	if err != nil {
		return c.fail(err)
	}
	printJSON(map[string]any{"presence": p})
	return 0
}

// oneArg checks that exactly one argument was given.
func oneArg(fs *flag.FlagSet, msg string) func() error {
	return func() error {
		if fs.NArg() != 1 {
			return errors.New(msg)
		}
		return nil
	}
}

// runDisconnect is "hasses disconnect": ends the streams of a client id, a
// user or a token (POST /disconnect).
func runDisconnect(args []string) int {
	c := newAPICmd("disconnect", "/disconnect", "Usage: hasses disconnect [-to URL] [-secret S] [-id ID] [-user USER] [-token TOKEN]\n"+
		"Ends the matching streams on every node; they get a hasses-disconnect event and may reconnect.")
	var d publish.Disconnect
	c.fs.StringVar(&d.ID, "id", "", "end the streams of this client id")
	c.fs.StringVar(&d.User, "user", "", "end the streams of this user (a subscriber token's sub)")
	c.fs.StringVar(&d.Token, "token", "", "end the streams subscribed to this token")
	if !c.parse(args, func() error {
		switch {
		case c.fs.NArg() != 0:
			return fmt.Errorf("unexpected argument %q", c.fs.Arg(0))
		case d == publish.Disconnect{}:
			return errors.New("say whose streams: -id, -user or -token")
		}
		return nil
	}) {
		return c.exit
	}
	defer c.cancel()
	n, err := c.client.Disconnect(c.ctx, d)
	if err != nil {
		return c.fail(err)
	}
	fmt.Printf("%d streams ended\n", n)
	return 0
}

// runRevoke is "hasses revoke": refuses a user's subscriber tokens issued
// until now and ends their streams (POST /revoke), or lists the
// revocations in force (-list).
func runRevoke(args []string) int {
	c := newAPICmd("revoke", "/revoke", "Usage: hasses revoke [-to URL] [-secret S] [-until TIME] USER\n       hasses revoke -list\n"+
		"Refuses USER's subscriber tokens issued until now and ends their streams on every node.")
	until := c.fs.String("until", "", "RFC 3339 time the revocation lasts until (default: a day, the most)")
	list := c.fs.Bool("list", false, "list the revocations in force instead")
	var end time.Time
	if !c.parse(args, func() error {
		switch {
		case *list && c.fs.NArg() != 0, !*list && c.fs.NArg() != 1:
			return errors.New("give one user (the tokens' sub), or -list")
		case *until != "":
			var err error
			if end, err = time.Parse(time.RFC3339, *until); err != nil {
				return fmt.Errorf("-until: %w", err)
			}
		}
		return nil
	}) {
		return c.exit
	}
	defer c.cancel()
	if *list {
		l, err := c.client.Revocations(c.ctx)
		if err != nil {
			return c.fail(err)
		}
		for _, r := range l {
			fmt.Printf("%s until %s\n", r.User, r.Until.UTC().Format(time.RFC3339))
		}
		return 0
	}
	n, err := c.client.Revoke(c.ctx, c.fs.Arg(0), end)
	if err != nil {
		return c.fail(err)
	}
	fmt.Printf("%s revoked, %d streams ended\n", c.fs.Arg(0), n)
	return 0
}
