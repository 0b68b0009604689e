package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/catalog-pipeline/pipeline/builtin"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/engine/config"
	"github.com/catalog-pipeline/pipeline/scripting"
	"github.com/catalog-pipeline/pipeline/store"
)

// shutdownGrace bounds how long SIGINT/SIGTERM waits for the commit in
// flight before the process gives up and exits anyway.
const shutdownGrace = 5 * time.Second

func serveCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("config", "pipelines", "folder of *.hcl pipeline files (watched: edits are applied without a restart)")
	dbPath := fs.String("db", "data/catalog.db", "bbolt file holding the catalog")
	var lf logFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pipeline serve: %v\n", err)
		return exitConfig
	}
	opts := config.Options{Specs: stageSpecs(), Logger: log}
	cfg, code := loadConfigWith(*dir, opts, stderr)
	if code != exitOK {
		return code
	}
	db, err := store.Open(*dbPath, store.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "pipeline serve: %v\n", err)
		return exitFail
	}
	defer db.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	eng := engine.New(cfg, db, log)
	var wg sync.WaitGroup
	// The watcher is set up before "serving" is logged, so that an edit
	// made from then on is never missed.
	if watcher, err := config.NewWatcher(*dir, opts); err != nil {
		log.Warn("pipeline files are not watched; restart to apply edits", "error", err)
	} else {
		wg.Go(func() {
			if err := watcher.Run(ctx, eng.Reload); err != nil {
				log.Warn("watching pipeline files stopped", "error", err)
			}
		})
	}
	log.Info("serving", "config", *dir, "db", *dbPath, "pipelines", len(cfg.Pipelines), "workers", cfg.Engine.Workers)
	done := make(chan error, 1)
	go func() { done <- eng.Serve(ctx) }()
	wg.Go(func() {
		select {
		case <-eng.CaughtUp():
			if err := printCatalogSummary(stdout, eng.Config(), db); err != nil {
				log.Warn("printing the summary", "error", err)
			}
		case <-ctx.Done():
		}
	})
	var serveErr error
	select {
	case serveErr = <-done:
	case <-ctx.Done():
		log.Info("stopping")
		select {
		case serveErr = <-done:
		case <-time.After(shutdownGrace):
			fmt.Fprintln(stderr, "pipeline serve: the loop did not stop in time; exiting")
			return exitFail
		}
	}
	stop()
	wg.Wait()
	if err := db.Close(); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("close store: %w", err)
	}
	if serveErr != nil {
		fmt.Fprintf(stderr, "pipeline serve: %v\n", serveErr)
		return exitFail
	}
	log.Info("stopped cleanly")
	return exitOK
}

// stageSpecs are the stage types pipeline files may use.
func stageSpecs() []engine.StageSpec {
	return append(builtin.Specs(), scripting.Spec)
}
