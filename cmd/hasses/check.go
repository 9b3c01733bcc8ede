package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/hasses-go/hasses/internal/config"
	"github.com/hasses-go/hasses/internal/server"
)

// runCheck is hasses -check (as nginx -t): it reads the options and the
// config file, loads the keys and certificates they name, and prints the
// effective configuration with secrets hidden. Exit 0, or 2 with every
// problem listed. Nothing is bound or started.
func runCheck(args []string, stdout, stderr io.Writer) int {
	opts, problems := config.Check(args)
	switch {
	case len(problems) == 1 && errors.Is(problems[0], config.ErrHelp):
		fmt.Fprint(stdout, config.Usage())
		return 0
	case len(problems) == 1 && errors.Is(problems[0], config.ErrVersion):
		fmt.Fprintf(stdout, "hasses %s\n", server.Version)
		return 0
	}
	if opts != nil {
		problems = append(problems, server.Check(opts)...)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "hasses: the configuration has %d problem(s):\n", len(problems))
		for _, p := range problems {
			fmt.Fprintf(stderr, "  %v\n", p)
		}
		return 2
	}
	fmt.Fprintf(stdout, "# hasses %s: effective configuration (secrets hidden)\n", server.Version)
	if opts.ConfigFile != "" {
		fmt.Fprintf(stdout, "# read from %s and the command line\n", opts.ConfigFile)
	}
	fmt.Fprint(stdout, config.Effective(opts))
	fmt.Fprintln(stderr, "hasses: the configuration is fine")
	return 0
}
