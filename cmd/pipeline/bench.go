package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/internal/bench"
	"github.com/catalog-pipeline/pipeline/store"
)

func benchCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "10000,100000", "comma-separated catalog sizes")
	work := fs.String("work", os.TempDir()+"/pipeline-bench", "folder for generated catalogs and databases")
	requests := fs.Int("requests", 2000, "requests per HTTP measure and connection count")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(stderr, "pipeline bench: --sizes: %q is not a positive number\n", s)
			return exitConfig
		}
		ns = append(ns, n)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "pipeline bench: %v\n", err)
		return exitFail
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	started := time.Now()
	rs, err := bench.Run(ctx, bench.Options{Sizes: ns, Work: *work, Binary: self, Requests: *requests, Log: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "pipeline bench: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "Machine: %s. Date: %s. Took %s.\n\n", bench.Machine(), time.Now().UTC().Format("2006-01-02"), time.Since(started).Round(time.Second))
	fmt.Fprint(stdout, bench.Table(rs))
	return exitOK
}

// benchRefreshCmd ingests a configuration once, then refreshes a single
// root location and processes only what that makes due, printing the
// second turn's figures as JSON. The benchmark uses it to show that a
// System-X location answering 304 reprocesses one entity and writes none.
func benchRefreshCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench-refresh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("config", "", "folder of *.hcl pipeline files")
	dbPath := fs.String("db", "", "bbolt file")
	loc := fs.String("location", "", "root location type:target to refresh")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, code := loadConfig(*dir, log, stderr)
	if code != exitOK {
		return code
	}
	l, err := engine.ParseLocationRef(*loc)
	if err != nil {
		fmt.Fprintf(stderr, "pipeline bench-refresh: %v\n", err)
		return exitConfig
	}
	db, err := store.Open(*dbPath, store.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "pipeline bench-refresh: %v\n", err)
		return exitFail
	}
	defer db.Close()
	ctx := context.Background()
	eng := engine.New(cfg, db, log)
	if _, err := eng.RunOnce(ctx); err != nil {
		fmt.Fprintf(stderr, "pipeline bench-refresh: %v\n", err)
		return exitFail
	}
	if err := eng.Refresh(engine.LocationEntity(l, false).Ref().String()); err != nil {
		fmt.Fprintf(stderr, "pipeline bench-refresh: %v\n", err)
		return exitFail
	}
	st, err := eng.RunDue(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pipeline bench-refresh: %v\n", err)
		return exitFail
	}
	b, _ := json.Marshal(map[string]int{"Processed": st.Processed, "Written": st.Written})
	fmt.Fprintln(stdout, string(b))
	return exitOK
}
