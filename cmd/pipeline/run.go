package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/engine/config"
	"github.com/catalog-pipeline/pipeline/internal/gctune"
	"github.com/catalog-pipeline/pipeline/store"
)

// logFlags are the logging flags every long-running command shares.
type logFlags struct {
	format string
	level  string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", l.level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", l.format)
}

// memoryFlag is the memory target of the collector's tuning
// (internal/gctune), which run and serve share: the engine allocates far
// more than it keeps, and collecting less often while the live heap is
// small saves about a sixth of an ingest's CPU (BENCHMARKS.md).
type memoryFlag struct{ mib int }

func (m *memoryFlag) register(fs *flag.FlagSet) {
	fs.IntVar(&m.mib, "memory-target", 192, "MiB of memory the Go runtime may use before collecting garbage while the live heap is small (fewer collections, less CPU); once the live heap needs more than half of it, collection is as by default; 0 keeps Go's default; ignored when GOGC or GOMEMLIMIT is set")
}

// start starts the tuning and returns its stop.
func (m memoryFlag) start() (stop func(), err error) {
	if m.mib < 0 || m.mib > math.MaxInt64>>20 {
		return nil, fmt.Errorf("--memory-target %d: want 0 to %d MiB", m.mib, math.MaxInt64>>20)
	}
	return gctune.Start(uint64(m.mib)<<20, nil), nil
}

// loadConfig reads the pipeline files; a configuration problem is printed
// with its diagnostics and reported as exit code 2.
func loadConfig(dir string, log *slog.Logger, stderr io.Writer) (*engine.Config, int) {
	return loadConfigWith(dir, config.Options{Specs: stageSpecs(), Logger: log}, stderr)
}

func loadConfigWith(dir string, opts config.Options, stderr io.Writer) (*engine.Config, int) {
	cfg, err := config.Load(dir, opts)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			msg := ce.Error()
			if !strings.HasSuffix(msg, "\n") {
				msg += "\n"
			}
			fmt.Fprint(stderr, msg)
			fmt.Fprintf(stderr, "pipeline: configuration in %s is not valid\n", dir)
			return nil, exitConfig
		}
		fmt.Fprintf(stderr, "pipeline: load configuration: %v\n", err)
		return nil, exitFail
	}
	return cfg, exitOK
}

// record starts writing a CPU profile, an execution trace or a memory
// profile to path; the function it returns finishes and closes it.
func record(path string, start func(io.Writer) error, stop func(io.Writer) error) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		err := stop(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}, nil
}

// writeAllocs writes the allocation profile: every allocation sampled since
// the program started, by call stack (go tool pprof -sample_index=alloc_space).
func writeAllocs(w io.Writer) error { return pprof.Lookup("allocs").WriteTo(w, 0) }

func runCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	once := fs.Bool("once", false, "process everything once and exit (required until `serve` lands)")
	dir := fs.String("config", "pipelines", "folder of *.hcl pipeline files")
	dbPath := fs.String("db", "data/catalog.db", "bbolt file holding the catalog")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (pprof) of the run to this file")
	traceFile := fs.String("trace", "", "write an execution trace (go tool trace) of the run to this file: which goroutines ran when, where the cores idle")
	memProfile := fs.String("memprofile", "", "write a memory profile (pprof) of the run to this file when it ends: what was allocated where, and what is still live")
	var lf logFlags
	lf.register(fs)
	var mem memoryFlag
	mem.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	stopTuning, err := mem.start()
	if err != nil {
		fmt.Fprintf(stderr, "pipeline run: %v\n", err)
		return exitConfig
	}
	defer stopTuning()
	for _, r := range []struct {
		path  string
		start func(io.Writer) error
		stop  func(io.Writer) error
	}{
		{*cpuProfile, pprof.StartCPUProfile, func(io.Writer) error { pprof.StopCPUProfile(); return nil }},
		{*traceFile, trace.Start, func(io.Writer) error { trace.Stop(); return nil }},
		{*memProfile, func(io.Writer) error { return nil }, writeAllocs},
	} {
		if r.path == "" {
			continue
		}
		stop, err := record(r.path, r.start, r.stop)
		if err != nil {
			fmt.Fprintf(stderr, "pipeline run: %v\n", err)
			return exitFail
		}
		defer func() {
			if err := stop(); err != nil {
				fmt.Fprintf(stderr, "pipeline run: %v\n", err)
			}
		}()
	}
	if !*once {
		fmt.Fprintln(stderr, "pipeline run: only --once is supported; the long-running loop is `pipeline serve`")
		return exitConfig
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pipeline run: %v\n", err)
		return exitConfig
	}
	cfg, code := loadConfig(*dir, log, stderr)
	if code != exitOK {
		return code
	}
	db, err := store.Open(*dbPath, store.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "pipeline run: %v\n", err)
		return exitFail
	}
	defer db.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	eng := engine.New(cfg, db, log)
	stats, err := eng.RunOnce(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pipeline run: %v\n", err)
		return exitFail
	}
	if err := printSummary(stdout, cfg, db, stats); err != nil {
		fmt.Fprintf(stderr, "pipeline run: %v\n", err)
		return exitFail
	}
	return exitOK
}

// printSummary prints what the run did and what the store now serves:
// entities per kind, relations, and every error with its entity and the
// location it came from.
func printSummary(w io.Writer, cfg *engine.Config, db *store.DB, stats engine.RunStats) error {
	for _, p := range cfg.Pipelines {
		fmt.Fprintf(w, "pipeline %q: %d location(s), %d stage(s)\n", p.Name, len(p.Locations), len(p.Stages))
	}
	fmt.Fprintf(w, "processed %d entities in %s (%.0f/s): %d written, %d unchanged, %d created, %d deleted; %d skipped unchanged, %d stitched\n",
		stats.Processed, stats.Duration.Round(1e6), stats.PerSecond(), stats.Written, stats.Unchanged, stats.Created, stats.Deleted, stats.Skipped, stats.Stitched)
	return printStoreSummary(w, db)
}

// printCatalogSummary prints the pipelines and what the store serves; serve
// prints it once the initial ingest has caught up.
func printCatalogSummary(w io.Writer, cfg *engine.Config, db *store.DB) error {
	for _, p := range cfg.Pipelines {
		fmt.Fprintf(w, "pipeline %q: %d location(s), %d stage(s)\n", p.Name, len(p.Locations), len(p.Stages))
	}
	return printStoreSummary(w, db)
}

// printStoreSummary prints entities per kind, relations, and every error
// with its entity and the location it came from.
func printStoreSummary(w io.Writer, db *store.DB) error {
	sum, err := db.Summarize()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "served entities: %d\n", sum.Entities)
	for _, k := range catalog.SortedKeys(sum.ByKind) {
		fmt.Fprintf(w, "  %-12s %d\n", k, sum.ByKind[k])
	}
	fmt.Fprintf(w, "relations: %d\n", sum.Relations)
	if sum.States > sum.Entities {
		fmt.Fprintf(w, "not served (never processed without errors): %d\n", sum.States-sum.Entities)
	}
	fmt.Fprintf(w, "entities with errors: %d\n", sum.WithErrors)
	return db.ForEachError(func(st *store.State) error {
		fmt.Fprintf(w, "  %s\n    from %s\n", st.Ref, managedBy(st.Unprocessed))
		for _, e := range st.Errors {
			fmt.Fprintf(w, "    %s: %s\n", e.Name, e.Message)
		}
		return nil
	})
}

// managedBy extracts the managed-by-location annotation of an unprocessed
// entity without decoding the rest.
func managedBy(raw json.RawMessage) string {
	var e struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return "(unknown location)"
	}
	if l := e.Metadata.Annotations[catalog.AnnotationManagedByLocation]; l != "" {
		return l
	}
	return "(unknown location)"
}

func entitiesCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("entities", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", "data/catalog.db", "bbolt file holding the catalog")
	kind := fs.String("kind", "", "only entities of this kind (case-insensitive)")
	asJSON := fs.Bool("json", false, "print a JSON array of the served entities")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if _, err := os.Stat(*dbPath); err != nil {
		fmt.Fprintf(stderr, "pipeline entities: %v\n", err)
		return exitFail
	}
	db, err := store.Open(*dbPath, store.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "pipeline entities: %v\n", err)
		return exitFail
	}
	defer db.Close()
	prefix := ""
	if *kind != "" {
		prefix = strings.ToLower(*kind) + ":"
	}
	bw := bufio.NewWriter(stdout)
	n := 0
	if *asJSON {
		bw.WriteString("[")
	}
	err = db.ForEachFinal(prefix, func(ref string, body []byte) error {
		if *asJSON {
			if n > 0 {
				bw.WriteString(",")
			}
			bw.WriteString("\n")
			bw.Write(body)
		} else {
			bw.WriteString(ref + "\n")
		}
		n++
		return nil
	})
	if *asJSON {
		bw.WriteString("\n]\n")
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintf(stderr, "pipeline entities: %v\n", err)
		return exitFail
	}
	return exitOK
}
