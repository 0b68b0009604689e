// Command pipeline is the catalog ingestion engine's CLI. main stays thin:
// each subcommand parses its flags, wires the packages and maps failures to
// exit codes (0 done, 1 failure, 2 configuration or usage error).
package main

import (
	"fmt"
	"io"
	"os"
)

func main() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2
)

// command is one subcommand.
type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the ingestion loop: refresh, hot reload, until SIGINT/SIGTERM", serveCmd},
		{"run", "process the configured pipelines once (--once) and print a summary", runCmd},
		{"entities", "print the entities the store serves", entitiesCmd},
		{"generate", "write a generated catalog (for benchmarks and tests)", generateCmd},
		{"bench", "measure ingest, refresh and HTTP queries on generated catalogs (make bench)", benchCmd},
		{"bench-refresh", "ingest, then refresh one root location and report what was reprocessed (used by bench)", benchRefreshCmd},
	}
}

// Main runs the CLI with args (without the program name) and returns the
// exit code; tests call it in-process.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitConfig
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "pipeline: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitConfig
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: pipeline <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'pipeline <command> -h' for the flags of a command.")
}
