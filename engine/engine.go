package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	NextDue() (time.Time, bool, error)
	Commit(outs []*store.Outcome) (store.CommitStats, error)
	CommitDeferred(outs []*store.Outcome) (store.CommitStats, error)
	StitchPending(limit int) (stats store.CommitStats, more bool, err error)
	SetKeepOrphans(keep bool)
}

// Engine processes the entities of a Config against a Store. Its
// configuration can be swapped while it runs (Reload); everything that
// depends on it hangs off one atomically replaced runtime.
type Engine struct {
	store Store
	log   *slog.Logger
	rt    atomic.Pointer[runtimeConfig]
	// wake nudges an idle Serve loop: new work, a reload, a refresh.
	wake chan struct{}
	// caughtUp is closed the first time Serve has nothing due.
	caughtUp     chan struct{}
	caughtUpOnce sync.Once

	obs observer

	mu  sync.Mutex
	rnd *rand.Rand
	now func() time.Time
}

// runtimeConfig is a Config prepared for processing.
type runtimeConfig struct {
	cfg       *Config
	pipelines map[string]*pipelineRT
}

type pipelineRT struct {
	*Pipeline
	hooks *hooks
	// refresh is the schedule per root location key, and def the
	// pipeline's own.
	refresh map[string]Refresh
	def     Refresh
	// memo says whether runs may be skipped when their inputs are
	// unchanged (memo.go).
	memo bool
}

// New prepares an engine. It does not touch the store.
func New(cfg *Config, st Store, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{store: st, log: log, wake: make(chan struct{}, 1), caughtUp: make(chan struct{}),
		rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed)), now: time.Now}
	e.install(cfg)
	return e
}

// install prepares cfg and makes it the configuration new work uses.
func (e *Engine) install(cfg *Config) {
	def := DefaultSettings()
	if cfg.Engine.Workers <= 0 {
		cfg.Engine.Workers = def.Workers
	}
	if cfg.Engine.BatchSize <= 0 {
		cfg.Engine.BatchSize = def.BatchSize
	}
	if cfg.Engine.Refresh == (Refresh{}) {
		cfg.Engine.Refresh = def.Refresh
	}
	if cfg.Engine.Orphans == "" {
		cfg.Engine.Orphans = def.Orphans
	}
	rt := &runtimeConfig{cfg: cfg, pipelines: map[string]*pipelineRT{}}
	for _, p := range cfg.Pipelines {
		prt := &pipelineRT{Pipeline: p, hooks: hooksOf(p), refresh: map[string]Refresh{}, def: cfg.Engine.Refresh,
			memo: !cfg.Engine.AlwaysReprocess && memoizable(p)}
		if p.Refresh != nil {
			prt.def = *p.Refresh
		}
		for _, l := range p.Locations {
			if l.Refresh != nil {
				prt.refresh[rootKey(l.Location)] = *l.Refresh
			}
		}
		rt.pipelines[p.Name] = prt
	}
	e.store.SetKeepOrphans(cfg.Engine.Orphans == OrphansKeep)
	e.rt.Store(rt)
}

// Config returns the configuration in use.
func (e *Engine) Config() *Config { return e.rt.Load().cfg }

// Reload swaps in a new, already validated configuration: new locations are
// ingested at once, removed ones have their subtrees pruned. Entities being
// processed finish with the stages they started with.
func (e *Engine) Reload(cfg *Config) error {
	e.install(cfg)
	_, err := e.SyncRoots()
	e.Wake()
	return err
}

// CaughtUp is closed once Serve has processed everything that was due when
// it started (and what that emitted): the initial ingest is complete.
func (e *Engine) CaughtUp() <-chan struct{} { return e.caughtUp }

// Wake makes an idle Serve loop look for due work now.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// never is the next-update time of entities whose refresh is off: they are
// processed again only when they change or are refreshed explicitly.
var never = time.Unix(0, math.MaxInt64)

// Retry backoff after a failed run: 5 s, doubling, capped at the entity's
// refresh interval (or at maxBackoff when refresh is off).
const (
	baseBackoff = 5 * time.Second
	maxBackoff  = 10 * time.Minute
)

// schedule returns the refresh schedule of an entity, by its pipeline and
// root location.
func (e *Engine) schedule(rt *runtimeConfig, pipeline, root string) Refresh {
	if p := rt.pipelines[pipeline]; p != nil {
		if r, ok := p.refresh[root]; ok {
			return r
		}
		return p.def
	}
	return rt.cfg.Engine.Refresh
}

// nextUpdate draws when st is due again after a run that ok-ed or failed:
// the schedule's interval plus jitter, or a backoff that grows with the
// consecutive failures.
func (e *Engine) nextUpdate(rt *runtimeConfig, st *store.State, ok bool) time.Time {
	r := e.schedule(rt, st.Pipeline, st.Root)
	now := e.now()
	if !ok {
		limit := maxBackoff
		if !r.Off && r.Interval > 0 {
			limit = r.Interval
		}
		d := baseBackoff << min(st.Failures, 20)
		return now.Add(min(d, limit))
	}
	if r.Off {
		return never
	}
	d := r.Interval
	if r.Jitter > 0 {
		e.mu.Lock()
		d += time.Duration(e.rnd.Int64N(int64(r.Jitter)))
		e.mu.Unlock()
	}
	// Due times are rounded down to a granule (a second for Backstage's
	// 100 s schedule, a hundredth of shorter intervals): entities committed
	// together then share a few due times, and as their queue keys are
	// time ‖ ref, a batch appends to a few runs of the queue instead of
	// dirtying a random page per entity.
	if g := min(time.Second, r.Interval/100); g > 0 {
		return now.Add(d).Truncate(g)
	}
	return now.Add(d)
}

// ProviderKey is the parent key that owns a pipeline's root entities.
func ProviderKey(pipeline string) string { return store.ProviderPrefix + pipeline }

// rootKey is the key of a root location as stored in store.State.Root.
func rootKey(l Location) string {
	if l.Type == "file" && !filepath.IsAbs(l.Target) {
		if abs, err := filepath.Abs(l.Target); err == nil {
			l.Target = abs
		}
	}
	return l.String()
}

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
		r.addEntity(ent.Ref().String(), ent, loc.String())
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
	// Skipped counts the processed entities whose run was skipped because
	// nothing it depended on changed (memo.go).
	Skipped  int
	Duration time.Duration
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
	for _, p := range e.rt.Load().cfg.Pipelines {
		reg, err := e.registered(p.Name)
		if err != nil {
			return total, fmt.Errorf("pipeline %q: registered locations: %w", p.Name, err)
		}
		withReg := *p
		withReg.Locations = slices.Clip(p.Locations)
		for _, r := range reg {
			// A registered location that the configuration now also
			// declares is the configuration's.
			if !slices.ContainsFunc(p.Locations, func(c RootLocation) bool { return c.Location == r.Location }) {
				withReg.Locations = append(withReg.Locations, r)
			}
		}
		roots, err := RootEntities(&withReg)
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
			e.log.Info("removing the entities of a pipeline that is no longer configured", "pipeline", strings.TrimPrefix(key, store.ProviderPrefix))
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
	ls, err := e.loop(ctx, func() time.Time { return start }, nil)
	ls.CommitStats.Add(stats.CommitStats)
	ls.Duration = e.now().Sub(start) // the whole pass, not only the loop
	return ls, err
}

// RunDue processes what is due now, and what that emits, then returns —
// one turn of the Serve loop without the waiting. Roots are not synced.
// Benchmarks and tools use it to measure a refresh of just what is due
// (for example after Refresh of one location).
func (e *Engine) RunDue(ctx context.Context) (RunStats, error) {
	start := e.now()
	return e.loop(ctx, func() time.Time { return start }, nil)
}

// Serve runs the ingestion loop until ctx is cancelled: roots are synced,
// then due entities are claimed in batches, processed by the workers and
// committed by a single writer; when nothing is due the loop sleeps until
// the next entity is due, at most a second, or until woken. Cancelling ctx
// abandons the batch being processed (nothing of it is written), waits for
// the commit in flight and returns nil.
func (e *Engine) Serve(ctx context.Context) error {
	if _, err := e.SyncRoots(); err != nil {
		return err
	}
	idle := func(ctx context.Context) bool {
		e.caughtUpOnce.Do(func() { close(e.caughtUp) })
		wait := time.Second
		if t, ok, err := e.store.NextDue(); err == nil && ok {
			wait = min(wait, max(t.Sub(e.now()), time.Millisecond))
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-e.wake:
		case <-timer.C:
		}
		return true
	}
	_, err := e.loop(ctx, e.now, idle)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// loop claims what is due at horizon(), processes it and commits it until
// nothing is due; then idle decides whether to wait for more (it returns
// false to stop). A nil idle stops at once.
//
// Processing and committing overlap: while the single writer commits batch
// N, the workers already process batch N+1 (entities still in flight are
// not claimed twice). An outcome made stale by its parent's commit is
// dropped by the store and the entity is simply processed again.
func (e *Engine) loop(ctx context.Context, horizon func() time.Time, idle func(context.Context) bool) (RunStats, error) {
	start := e.now()
	var stats RunStats
	var (
		mu       sync.Mutex
		inflight = map[string]bool{}
	)
	skip := func(ref string) bool {
		mu.Lock()
		defer mu.Unlock()
		return inflight[ref]
	}
	release := func(outs []*store.Outcome) {
		mu.Lock()
		for _, o := range outs {
			delete(inflight, o.Ref)
		}
		mu.Unlock()
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
			cs, err := e.store.CommitDeferred(outs)
			committed <- commitResult{cs, outs, err}
		}
		close(committed)
	}()
	// Final entities are rebuilt (stitched) after their changes were
	// committed, once each however often they changed: when nothing is
	// due, and at least every stitchEvery while the engine stays busy.
	lastStitch := e.now()
	stitch := func() error {
		start, lastLog, n, merged := e.now(), e.now(), 0, 0
		for {
			cs, more, err := e.store.StitchPending(stitchBatch)
			if err != nil {
				return fmt.Errorf("stitch: %w", err)
			}
			stats.Stitched += cs.Stitched
			n += cs.Stitched
			merged += cs.IndexRowsMerged
			now := e.now()
			if !more {
				if now.Sub(start) >= 2*time.Second {
					e.log.Info("stitched", "entities", n, "index_rows_merged", merged, "duration", now.Sub(start).Round(time.Millisecond).String())
				}
				lastStitch = now
				return nil
			}
			if now.Sub(lastLog) >= 2*time.Second {
				e.log.Info("stitching", "entities", n, "per_second", int(float64(n)/now.Sub(start).Seconds()))
				lastLog = now
			}
		}
	}
	pending := 0
	var firstErr error
	account := func(r commitResult) {
		// Released here, by the goroutine that claims, and not by the
		// writer: a Claim whose read transaction began before this commit
		// would otherwise see the entities as due in its old snapshot yet
		// no longer in flight, and process them a second time.
		release(r.outs)
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
			if o.Skipped {
				stats.Skipped++
			}
			if !o.OK {
				stats.Failed++
			}
			if len(o.Errors) > 0 {
				stats.WithErrors++
			}
		}
		for _, c := range r.stats.Conflicts {
			e.log.Warn("conflicting entity ref", "entity", c.Ref, "owned_by", c.ExistingKey, "claimed_by", c.NewKey)
		}
	}
	lastLog, lastCount, loggedIdle := start, 0, false
	// A batch whose runs were all skipped (memo.go) costs the writer only
	// schedule updates, and most of that cost is per transaction: the next
	// batch may then be larger, up to maxBatchGrowth times batch_size. Any
	// real run brings it back to batch_size.
	growth := 1
	for firstErr == nil {
		if err := ctx.Err(); err != nil {
			firstErr = err
			break
		}
		rt := e.rt.Load()
		batch, err := e.store.Claim(horizon(), growth*rt.cfg.Engine.BatchSize, skip)
		if err != nil {
			firstErr = fmt.Errorf("claim due entities: %w", err)
			break
		}
		if len(batch) == 0 {
			if pending > 0 {
				// What is due may depend on the commit in flight.
				account(<-committed)
				continue
			}
			if err := stitch(); err != nil {
				firstErr = err
				break
			}
			if stats.Processed > lastCount || !loggedIdle {
				loggedIdle = true
				e.log.Info("caught up", "processed", stats.Processed, "written", stats.Written,
					"unchanged", stats.Unchanged, "deleted", stats.Deleted, "skipped", stats.Skipped, "stitched", stats.Stitched, "errors", stats.WithErrors)
				lastCount = stats.Processed
			}
			if idle == nil || !idle(ctx) {
				break
			}
			continue
		}
		mu.Lock()
		for _, st := range batch {
			inflight[st.Ref] = true
		}
		mu.Unlock()
		outs := e.processBatch(ctx, rt, batch)
		if ctx.Err() != nil {
			// Abandon: outcomes made under cancellation are not trustworthy.
			release(outs)
			firstErr = ctx.Err()
			break
		}
		growth = min(growth*2, maxBatchGrowth)
		for _, o := range outs {
			if !o.Skipped {
				growth = 1
				break
			}
		}
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
		if e.now().Sub(lastStitch) >= stitchEvery {
			if err := stitch(); err != nil {
				firstErr = err
				break
			}
		}
		if now := e.now(); now.Sub(lastLog) >= 2*time.Second {
			rate := float64(stats.Processed-lastCount) / now.Sub(lastLog).Seconds()
			lastLog, lastCount = now, stats.Processed
			e.log.Info("ingesting", "processed", stats.Processed, "created", stats.Created,
				"written", stats.Written, "per_second", int(rate))
		}
	}
	close(toCommit)
	for r := range committed {
		account(r)
	}
	stats.Duration = e.now().Sub(start)
	return stats, firstErr
}

// stitchEvery bounds how long a changed entity waits to be served while
// the engine is never idle (a bulk ingest, a catalog larger than one
// refresh interval can process); a shorter bound stitches entities that
// change again later (a group gains relations with every batch of its
// members) more than once. stitchBatch is how many final entities one
// stitch transaction rebuilds: 4000 stitched 100k entities 16% faster than
// 1000 for a heap peak of ~600 MB instead of ~330 MB (BENCHMARKS.md).
const (
	stitchEvery = time.Minute
	stitchBatch = 4000
)

// maxBatchGrowth bounds how much larger than batch_size a batch of
// skipped runs may grow; such an outcome holds a few hundred bytes.
const maxBatchGrowth = 16

// processBatch runs a batch through the workers; outcomes keep the batch
// order so that commits are deterministic.
func (e *Engine) processBatch(ctx context.Context, rt *runtimeConfig, batch []*store.State) []*store.Outcome {
	outs := make([]*store.Outcome, len(batch))
	workers := min(rt.cfg.Engine.Workers, len(batch))
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				o := e.process(ctx, rt, batch[i])
				o.NextUpdate = e.nextUpdate(rt, batch[i], o.OK)
				outs[i] = o
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
