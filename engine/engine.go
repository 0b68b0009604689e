package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/catalog-pipeline/pipeline/store"
)

// Store is what the engine needs from persistence. The engine owns this
// interface so that tests can fake it and another backend can slot in;
// store.DB implements it.
type Store interface {
	ApplyRoots(provider, pipeline string, roots []store.Child) (store.CommitStats, error)
	Providers() ([]string, error)
	MarkAllDue() error
	Claim(horizon time.Time, limit int, skip func(ref string) bool) ([]*store.State, error)
	Commit(outs []*store.Outcome) (store.CommitStats, error)
}

// Engine processes the entities of a Config against a Store.
type Engine struct {
	cfg       *Config
	store     Store
	log       *slog.Logger
	pipelines map[string]*pipelineRT

	mu  sync.Mutex
	rnd *rand.Rand
	now func() time.Time
}

type pipelineRT struct {
	*Pipeline
	hooks *hooks
}

// New prepares an engine. It does not touch the store.
func New(cfg *Config, st Store, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{cfg: cfg, store: st, log: log, pipelines: map[string]*pipelineRT{},
		rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed)), now: time.Now}
	def := DefaultSettings()
	if e.cfg.Engine.Workers <= 0 {
		e.cfg.Engine.Workers = def.Workers
	}
	if e.cfg.Engine.BatchSize <= 0 {
		e.cfg.Engine.BatchSize = def.BatchSize
	}
	for _, p := range cfg.Pipelines {
		e.pipelines[p.Name] = &pipelineRT{Pipeline: p, hooks: hooksOf(p)}
	}
	return e
}

// nextUpdate draws the next refresh time: now + Interval + [0, Jitter).
func (e *Engine) nextUpdate() time.Time {
	s := e.cfg.Engine
	d := s.Interval
	if s.Jitter > 0 {
		e.mu.Lock()
		d += time.Duration(e.rnd.Int64N(int64(s.Jitter)))
		e.mu.Unlock()
	}
	return e.now().Add(d)
}

// ProviderKey is the parent key that owns a pipeline's root entities.
func ProviderKey(pipeline string) string { return store.ProviderPrefix + pipeline }

// RootEntities are the Location entities of a pipeline's configured
// locations, as store children owned by the pipeline's provider key.
func RootEntities(p *Pipeline) ([]store.Child, error) {
	var r run
	r.seen = map[string]int{}
	var errs []error
	for _, l := range p.Locations {
		loc := l.Location
		if loc.Type == "file" && !filepath.IsAbs(loc.Target) {
			abs, err := filepath.Abs(loc.Target)
			if err != nil {
				errs = append(errs, fmt.Errorf("location %s (%s): %w", loc, l.Pos, err))
				continue
			}
			loc.Target = abs
		}
		ent := LocationEntity(loc, l.Optional)
		r.addChildEntity(ent.Ref().String(), ent, loc.String())
	}
	for _, se := range r.errs {
		errs = append(errs, errors.New(se.Message))
	}
	return r.children, errors.Join(errs...)
}

// RunStats summarises a run.
type RunStats struct {
	store.CommitStats
	// Processed counts entities run through the stages; Failed counts those
	// whose run failed outright, WithErrors those that recorded any error.
	Processed, Failed, WithErrors int
	Duration                      time.Duration
}

// PerSecond is the processing rate of the run.
func (s RunStats) PerSecond() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Processed) / s.Duration.Seconds()
}

// SyncRoots makes the store's roots match the configuration: every
// pipeline's locations become its root Location entities, and the roots of
// pipelines that are no longer configured are removed with their subtrees.
func (e *Engine) SyncRoots() (store.CommitStats, error) {
	var total store.CommitStats
	want := map[string]bool{}
	for _, p := range e.cfg.Pipelines {
		roots, err := RootEntities(p)
		if err != nil {
			return total, fmt.Errorf("pipeline %q: %w", p.Name, err)
		}
		key := ProviderKey(p.Name)
		want[key] = true
		st, err := e.store.ApplyRoots(key, p.Name, roots)
		if err != nil {
			return total, fmt.Errorf("pipeline %q: apply roots: %w", p.Name, err)
		}
		total.Add(st)
	}
	have, err := e.store.Providers()
	if err != nil {
		return total, err
	}
	for _, key := range have {
		if !want[key] {
			e.log.Info("removing the entities of a pipeline that is no longer configured", "provider", key)
			st, err := e.store.ApplyRoots(key, "", nil)
			if err != nil {
				return total, fmt.Errorf("remove %s: %w", key, err)
			}
			total.Add(st)
		}
	}
	return total, nil
}

// RunOnce refreshes the whole catalog once: roots are synced, every entity
// is made due, and entities are processed in batches until nothing that was
// due when the run started, or was emitted during it, is left.
//
// Processing and committing overlap: while the single writer commits batch
// N, the workers already process batch N+1 (entities still in flight are
// not claimed twice). An outcome made stale by its parent's commit is
// dropped by the store and the entity is simply processed again.
func (e *Engine) RunOnce(ctx context.Context) (RunStats, error) {
	start := e.now()
	var stats RunStats
	rs, err := e.SyncRoots()
	if err != nil {
		return stats, err
	}
	stats.Add(rs)
	if err := e.store.MarkAllDue(); err != nil {
		return stats, fmt.Errorf("mark entities due: %w", err)
	}

	var (
		mu       sync.Mutex
		inflight = map[string]bool{}
	)
	skip := func(ref string) bool {
		mu.Lock()
		defer mu.Unlock()
		return inflight[ref]
	}
	type commitResult struct {
		stats store.CommitStats
		outs  []*store.Outcome
		err   error
	}
	toCommit := make(chan []*store.Outcome)
	committed := make(chan commitResult)
	go func() {
		for outs := range toCommit {
			cs, err := e.store.Commit(outs)
			mu.Lock()
			for _, o := range outs {
				delete(inflight, o.Ref)
			}
			mu.Unlock()
			committed <- commitResult{cs, outs, err}
		}
		close(committed)
	}()
	pending := 0
	var firstErr error
	account := func(r commitResult) {
		pending--
		if r.err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("commit batch: %w", r.err)
			}
			return
		}
		stats.Add(r.stats)
		for _, o := range r.outs {
			stats.Processed++
			if !o.OK {
				stats.Failed++
			}
			if len(o.Errors) > 0 {
				stats.WithErrors++
			}
		}
	}
	lastLog := start
	for firstErr == nil {
		if err := ctx.Err(); err != nil {
			firstErr = err
			break
		}
		batch, err := e.store.Claim(start, e.cfg.Engine.BatchSize, skip)
		if err != nil {
			firstErr = fmt.Errorf("claim due entities: %w", err)
			break
		}
		if len(batch) == 0 {
			if pending == 0 {
				break
			}
			// What is due may depend on the commit in flight.
			account(<-committed)
			continue
		}
		mu.Lock()
		for _, st := range batch {
			inflight[st.Ref] = true
		}
		mu.Unlock()
		outs := e.processBatch(ctx, batch)
		// Hand over to the writer; collect a finished commit first if the
		// writer is busy, so that at most one batch waits.
		for sent := false; !sent; {
			select {
			case toCommit <- outs:
				sent = true
				pending++
			case r := <-committed:
				account(r)
			}
		}
		if now := e.now(); now.Sub(lastLog) >= 2*time.Second {
			lastLog = now
			e.log.Info("ingesting", "processed", stats.Processed, "created", stats.Created,
				"per_second", int(float64(stats.Processed)/now.Sub(start).Seconds()))
		}
	}
	close(toCommit)
	for r := range committed {
		account(r)
	}
	stats.Duration = e.now().Sub(start)
	if firstErr != nil {
		return stats, firstErr
	}
	for _, c := range stats.Conflicts {
		e.log.Warn("conflicting entity ref", "entity", c.Ref, "owned_by", c.ExistingKey, "claimed_by", c.NewKey)
	}
	return stats, nil
}

// processBatch runs a batch through the workers; outcomes keep the batch
// order so that commits are deterministic.
func (e *Engine) processBatch(ctx context.Context, batch []*store.State) []*store.Outcome {
	outs := make([]*store.Outcome, len(batch))
	workers := min(e.cfg.Engine.Workers, len(batch))
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				outs[i] = e.Process(ctx, batch[i])
			}
		})
	}
	for i := range batch {
		next <- i
	}
	close(next)
	wg.Wait()
	return outs
}
