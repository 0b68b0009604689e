package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/catalog-pipeline/pipeline/api"
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
	listen := fs.String("listen", "127.0.0.1:7007", `address of the HTTP API (Backstage's port); "" or "off" disables it`)
	token := fs.String("token", os.Getenv("PIPELINE_API_TOKEN"), "bearer token required by mutating API routes (default $PIPELINE_API_TOKEN)")
	readOnly := fs.Bool("readonly", false, "refuse location changes over the API (403), like Backstage's catalog.readonly")
	var lf logFlags
	lf.register(fs)
	var mem memoryFlag
	mem.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	stopTuning, err := mem.start()
	if err != nil {
		fmt.Fprintf(stderr, "pipeline serve: %v\n", err)
		return exitConfig
	}
	defer stopTuning()
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
	var srv *http.Server
	if *listen != "" && *listen != "off" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			fmt.Fprintf(stderr, "pipeline serve: listen on %s: %v\n", *listen, err)
			return exitFail
		}
		srv = &http.Server{
			Handler: api.New(api.Options{Catalog: db, Engine: eng, Logger: log, Token: *token, ReadOnly: *readOnly,
				Status: eng, Reload: func() error {
					cfg, err := config.Load(*dir, opts)
					if err != nil {
						return err
					}
					return eng.Reload(cfg)
				}}),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      2 * time.Minute,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("HTTP server stopped", "error", err)
			}
		})
		log.Info("HTTP API listening", "url", "http://"+ln.Addr().String()+"/api/catalog/entities", "token_required", *token != "")
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
			// The initial ingest is the memory peak; give it back now rather
			// than in GC cycles that would land among the first API requests.
			debug.FreeOSMemory()
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
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		_ = srv.Shutdown(sctx)
		cancel()
	}
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
