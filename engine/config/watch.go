package config

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/catalog-pipeline/pipeline/engine"
)

// debounce groups the burst of events an editor produces when it saves
// (write, chmod, rename) into one reload.
const debounce = 250 * time.Millisecond

// Watcher reloads the configuration in dir whenever one of its *.hcl files
// is created, written, renamed or removed. A changed configuration is loaded
// and validated in full first; only a good one is passed to apply, and a
// bad one is logged with its diagnostics while the last good one keeps
// running. Scripts are not watched here: script stages recompile
// themselves when their file changes.
type Watcher struct {
	dir string
	o   Options
	w   *fsnotify.Watcher
}

// NewWatcher starts watching dir at once, so that no edit made after it
// returns is missed; Run then applies the changes.
func NewWatcher(dir string, o Options) (*Watcher, error) {
	if o.Logger == nil {
		return nil, errors.New("config: a Watcher needs Options.Logger")
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	return &Watcher{dir: dir, o: o, w: w}, nil
}

// Watch is NewWatcher followed by Run.
func Watch(ctx context.Context, dir string, o Options, apply func(*engine.Config) error) error {
	w, err := NewWatcher(dir, o)
	if err != nil {
		return err
	}
	return w.Run(ctx, apply)
}

// Run applies changes until ctx is done, then stops watching.
func (wt *Watcher) Run(ctx context.Context, apply func(*engine.Config) error) error {
	w, dir, o, log := wt.w, wt.dir, wt.o, wt.o.Logger
	defer w.Close()
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.Errors:
			log.Warn("watching pipeline files", "dir", dir, "error", err)
		case ev := <-w.Events:
			if !strings.HasSuffix(ev.Name, ".hcl") || ev.Op == fsnotify.Chmod {
				continue
			}
			log.Debug("pipeline file changed", "file", filepath.Base(ev.Name), "op", ev.Op.String())
			timer = time.After(debounce)
		case <-timer:
			timer = nil
			cfg, err := Load(dir, o)
			if err != nil {
				log.Error("pipeline files changed but are not valid; the last good configuration keeps running",
					"dir", dir, "diagnostics", err.Error())
				continue
			}
			if err := apply(cfg); err != nil {
				log.Error("applying the reloaded configuration", "error", err)
				continue
			}
			log.Info("configuration reloaded", "dir", dir, "pipelines", len(cfg.Pipelines))
		}
	}
}
