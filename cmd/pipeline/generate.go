package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/internal/gen"
)

func generateCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "folder to write the catalog and its pipeline.hcl into (required)")
	n := fs.Int("count", 10000, "number of entities")
	seed := fs.Int64("seed", 1, "random seed; the same seed writes the same catalog")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if *out == "" || *n <= 0 {
		fmt.Fprintln(stderr, "pipeline generate: --out is required and --count must be positive")
		return exitConfig
	}
	st, err := gen.Write(*out, gen.Options{N: *n, Seed: *seed})
	if err != nil {
		fmt.Fprintf(stderr, "pipeline generate: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "wrote %d entities in %d files to %s\n", st.Entities, st.Files, *out)
	for _, k := range catalog.SortedKeys(st.ByKind) {
		fmt.Fprintf(stdout, "  %-10s %d\n", k, st.ByKind[k])
	}
	return exitOK
}
