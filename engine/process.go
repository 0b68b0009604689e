package engine

import (
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/reading"
	"github.com/catalog-pipeline/pipeline/store"
)

// hooks are a pipeline's stages sorted by the hooks they implement, in
// declaration order, computed once per pipeline.
type hooks struct {
	readers    []LocationReader
	pre        []PreProcessor
	validators []KindValidator
	post       []PostProcessor
}

func hooksOf(p *Pipeline) *hooks {
	h := &hooks{}
	for _, s := range p.Stages {
		if r, ok := s.(LocationReader); ok {
			h.readers = append(h.readers, r)
		}
		if r, ok := s.(PreProcessor); ok {
			h.pre = append(h.pre, r)
		}
		if r, ok := s.(KindValidator); ok {
			h.validators = append(h.validators, r)
		}
		if r, ok := s.(PostProcessor); ok {
			h.post = append(h.post, r)
		}
	}
	return h
}

// hookChecker is implemented by stages whose hooks can change at run time
// (scripts): the engine skips hooks they do not currently define.
type hookChecker interface {
	HasHook(name string) bool
}

// defines reports whether s currently defines hook.
func defines(s Stage, hook string) bool {
	if hc, ok := s.(hookChecker); ok {
		return hc.HasHook(hook)
	}
	return true
}

// stageError turns what a hook returned into a serialized error naming the
// stage and hook, keeping a ProcessingError's name (InputError, ...).
func stageError(stage, hook string, err error) catalog.SerializedError {
	name := GeneralErrorName
	var pe *ProcessingError
	if errors.As(err, &pe) {
		name = pe.Name
	}
	return catalog.SerializedError{Name: name, Message: fmt.Sprintf("stage %q failed in %s: %v", stage, hook, err)}
}

func serialize(err error) catalog.SerializedError {
	var pe *ProcessingError
	if errors.As(err, &pe) {
		return catalog.SerializedError{Name: pe.Name, Message: pe.Message}
	}
	return catalog.SerializedError{Name: GeneralErrorName, Message: err.Error()}
}

// run is the processing of one entity: the collector of everything its
// hooks emit.
type run struct {
	ref      string
	self     catalog.Ref
	loc      Location
	origin   string
	errs     []catalog.SerializedError
	children []store.Child
	seen     map[string]int // child ref → index in children
	rels     map[store.Relation]struct{}
	keys     map[string]struct{}
	// emitErr is set by an error with no location: every old child is kept.
	emitErr bool
	// keepLoc lists locations whose read reported errors: their old
	// children are kept rather than pruned.
	keepLoc map[string]bool
	warn    func(msg string, args ...any)
}

func (r *run) emit(res Result) {
	switch t := res.(type) {
	case EntityResult:
		r.addChild(t)
	case preparedChild:
		r.addPrepared(t)
	case LocationResult:
		r.addLocation(t)
	case RelationResult:
		r.rels[store.Relation{Source: t.Source.String(), Type: t.Type, Target: t.Target.String()}] = struct{}{}
	case ErrorResult:
		se := serialize(t.Err)
		if t.Location.Target != "" && !strings.Contains(se.Message, t.Location.Target) {
			se.Message += " (at " + t.Location.String() + ")"
		}
		r.errs = append(r.errs, se)
		switch {
		case se.Name == NotFoundErrorName && t.Location.Target != "":
			// The source is gone: its entities go too (Backstage #28638).
		case t.Location.Target != "":
			if r.keepLoc == nil {
				r.keepLoc = map[string]bool{}
			}
			r.keepLoc[t.Location.String()] = true
		default:
			r.emitErr = true
		}
	case RefreshResult:
		r.keys[t.Key] = struct{}{}
	}
}

func (r *run) addChild(t EntityResult) { r.addResult(r.prepareChild(t)) }

// preparedChild is an emitted entity already validated, annotated, encoded
// and hashed: what addChild does before the checks that need the whole
// run. A Location's targets are read in parallel, and preparing each
// target's entities in its own goroutine both spreads that work over the
// cores and keeps only the encoded form (a fraction of the decoded maps) in
// memory until the targets are merged.
type preparedChild struct {
	child store.Child
}

func (preparedChild) isResult() {}

// prepareChild turns t into a preparedChild, an ErrorResult when the entity
// is invalid, or nil when it is ignored. It reads only the run's identity
// fields, so that reads of several targets may call it concurrently.
func (r *run) prepareChild(t EntityResult) Result {
	e := t.Entity
	if e == nil {
		return nil
	}
	if err := catalog.ValidateEnvelope(e); err != nil {
		return ErrorResult{Location: t.Location, Err: InputError("invalid entity at %s: %v", t.Location, err)}
	}
	ref := e.Ref()
	if strings.ContainsFunc(ref.String(), func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return ErrorResult{Location: t.Location, Err: InputError("invalid entity at %s: its ref %q contains control characters", t.Location, ref.String())}
	}
	if ref.Equal(r.self) {
		r.warn("ignoring an entity that emits itself", "entity", r.ref, "location", t.Location.String())
		return nil
	}
	e.SetAnnotation(catalog.AnnotationManagedByLocation, t.Location.String())
	e.SetAnnotation(catalog.AnnotationManagedByOriginLocation, r.origin)
	key := t.LocationKey
	if key == "" && !t.NoLocationKey {
		key = t.Location.String()
	}
	return encodeChild(ref.String(), e, key)
}

// encodeChild encodes e as the child ref owned by key, or returns the
// ErrorResult of a failed encoding.
func encodeChild(ref string, e *catalog.Entity, key string) Result {
	body, err := e.MarshalJSON()
	if err != nil {
		return ErrorResult{Err: GeneralError("encode entity %s: %v", ref, err)}
	}
	sum := sha1.Sum(body)
	return preparedChild{store.Child{Ref: ref, Entity: body, Hash: hex.EncodeToString(sum[:]), LocationKey: key}}
}

// addPrepared adds a prepared child unless its ref was emitted already.
func (r *run) addPrepared(c preparedChild) {
	if i, dup := r.seen[c.child.Ref]; dup {
		r.emit(ErrorResult{Err: &ProcessingError{Name: ConflictErrorName,
			Message: fmt.Sprintf("entity %s is emitted twice (by %s and by %s); keeping the first", c.child.Ref, r.children[i].LocationKey, c.child.LocationKey)}})
		return
	}
	r.seen[c.child.Ref] = len(r.children)
	r.children = append(r.children, c.child)
}

func (r *run) addLocation(t LocationResult) {
	e := LocationEntity(t.Location, t.Optional)
	// A generated Location is managed by the location of its parent.
	e.SetAnnotation(catalog.AnnotationManagedByLocation, r.loc.String())
	e.SetAnnotation(catalog.AnnotationManagedByOriginLocation, r.origin)
	r.addEntity(e.Ref().String(), e, r.loc.String())
}

// addEntity encodes e and adds it as the child ref owned by key.
func (r *run) addEntity(ref string, e *catalog.Entity, key string) {
	r.addResult(encodeChild(ref, e, key))
}

// addResult adds what prepareChild or encodeChild returned.
func (r *run) addResult(res Result) {
	switch c := res.(type) {
	case preparedChild:
		r.addPrepared(c)
	case nil:
	default:
		r.emit(c)
	}
}

// LocationEntity is the Location entity Backstage generates for a location:
// named "generated-" + sha1("type:target"), with spec type, target and
// presence, and the location itself as its managing location.
func LocationEntity(l Location, optional bool) *catalog.Entity {
	sum := sha1.Sum([]byte(l.String()))
	presence := "required"
	if optional {
		presence = "optional"
	}
	e := &catalog.Entity{
		APIVersion: "backstage.io/v1alpha1",
		Kind:       catalog.KindLocation,
		Metadata: catalog.Metadata{
			Name:      "generated-" + hex.EncodeToString(sum[:]),
			Namespace: catalog.DefaultNamespace,
		},
		Spec: map[string]any{"type": l.Type, "target": l.Target, "presence": presence},
	}
	e.SetAnnotation(catalog.AnnotationManagedByLocation, l.String())
	e.SetAnnotation(catalog.AnnotationManagedByOriginLocation, l.String())
	return e
}

// Process runs one entity through its pipeline's stages, following
// DESIGN.md's five steps, and returns the outcome to commit. It never
// fails: problems become errors in the outcome, and a stage failure makes
// the outcome not OK so that the last good result is kept.
func (e *Engine) Process(ctx context.Context, st *store.State) *store.Outcome {
	rt := e.rt.Load()
	o := e.process(ctx, rt, st)
	o.NextUpdate = e.nextUpdate(rt, st, o.OK)
	return o
}

// processOptions vary processing for the API's checks.
type processOptions struct {
	// noRead skips reading a Location entity's targets (validate-entity).
	noRead bool
}

func (e *Engine) process(ctx context.Context, rt *runtimeConfig, st *store.State) *store.Outcome {
	return e.processWith(ctx, rt, st, processOptions{})
}

func (e *Engine) processWith(ctx context.Context, rt *runtimeConfig, st *store.State, opts processOptions) *store.Outcome {
	out := &store.Outcome{Ref: st.Ref, UnprocessedHash: st.UnprocessedHash}
	fail := func(se catalog.SerializedError) *store.Outcome {
		out.OK = false
		out.Errors = []catalog.SerializedError{se}
		var h outcomeHash
		h.init("failed")
		h.errors(out.Errors)
		out.ResultHash = h.sum()
		return out
	}
	pl := rt.pipelines[st.Pipeline]
	if pl == nil {
		return fail(catalog.SerializedError{Name: GeneralErrorName, Message: fmt.Sprintf("pipeline %q is not configured", st.Pipeline)})
	}
	// Skip the run when nothing it depends on changed (memo.go).
	memo := pl.memo && !opts.noRead
	var fp [sha1.Size]byte
	var src *reading.Sources
	if memo {
		fp = fingerprint(pl, st)
		if hit, updated := memoHit(pl, st, fp); hit {
			out.OK, out.Skipped, out.ResultHash, out.Memo, out.Errors = true, true, st.ResultHash, updated, st.Errors
			return out
		}
		src = &reading.Sources{}
		ctx = reading.WithSources(ctx, src)
	}
	h := pl.hooks
	// UnmarshalJSON directly: json.Unmarshal would first scan the bytes
	// twice (to validate them and to find the value's end) before calling
	// it, a third of the decoding's CPU.
	ent := &catalog.Entity{}
	if err := ent.UnmarshalJSON(st.Unprocessed); err != nil {
		return fail(serialize(InputError("decode entity %s: %v", st.Ref, err)))
	}
	if err := catalog.ValidateEnvelope(ent); err != nil {
		return fail(serialize(InputError("%v", err)))
	}
	loc, err := ParseLocationRef(ent.Annotation(catalog.AnnotationManagedByLocation))
	if err != nil {
		return fail(serialize(InputError("entity %s has no valid %s annotation: %v", st.Ref, catalog.AnnotationManagedByLocation, err)))
	}
	origin := ent.Annotation(catalog.AnnotationManagedByOriginLocation)
	if _, err := ParseLocationRef(origin); err != nil {
		return fail(serialize(InputError("entity %s has no valid %s annotation: %v", st.Ref, catalog.AnnotationManagedByOriginLocation, err)))
	}
	cs, err := newCaches(st.Cache)
	if err != nil {
		return fail(serialize(GeneralError("%v", err)))
	}
	r := &run{ref: st.Ref, self: ent.Ref(), loc: loc, origin: origin, seen: map[string]int{},
		rels: map[store.Relation]struct{}{}, keys: map[string]struct{}{},
		warn: func(msg string, args ...any) { e.log.Warn(msg, args...) }}
	emitFor := func(done *bool) Emit {
		return func(res Result) {
			if *done {
				e.log.Warn("ignoring a result emitted after its hook returned", "entity", st.Ref)
				return
			}
			r.emit(res)
		}
	}

	// 1. Pre-process.
	for _, s := range h.pre {
		if !defines(s, "preProcessEntity") {
			continue
		}
		done := false
		start := time.Now()
		next, err := s.PreProcessEntity(ctx, ent, loc, emitFor(&done), cs.forStage(s.Name()))
		done = true
		e.obs.hook(pl.Name, s.Name(), "preProcessEntity", start, err)
		if err != nil {
			return fail(stageError(s.Name(), "preProcessEntity", err))
		}
		if next == nil {
			return fail(stageError(s.Name(), "preProcessEntity", errors.New("returned no entity")))
		}
		ent = next
	}

	// 2. Validate: policies, then the kind validators.
	if ent.Metadata.Namespace == "" {
		ent.Metadata.Namespace = catalog.DefaultNamespace
	}
	if err := catalog.ValidateFields(ent); err != nil {
		return fail(serialize(InputError("%s: %v", st.Ref, err)))
	}
	if got := ent.Ref().String(); got != st.Ref {
		return fail(catalog.SerializedError{Name: ConflictErrorName,
			Message: fmt.Sprintf("the entity kind, namespace, or name changed during processing (%s became %s)", st.Ref, got)})
	}
	accepted := false
	for _, s := range h.validators {
		if !defines(s, "validateEntityKind") {
			continue
		}
		start := time.Now()
		ok, err := s.ValidateEntityKind(ctx, ent)
		e.obs.hook(pl.Name, s.Name(), "validateEntityKind", start, err)
		if err != nil {
			return fail(stageError(s.Name(), "validateEntityKind", err))
		}
		accepted = accepted || ok
	}
	if !accepted {
		return fail(serialize(InputError("no stage recognized the entity %s as valid: kind %q with apiVersion %q is not a known kind, or the stage that knows it is missing from pipeline %q",
			st.Ref, ent.Kind, ent.APIVersion, pl.Name)))
	}

	// 3. Location entities: read their targets (the engine's own step).
	if strings.EqualFold(ent.Kind, catalog.KindLocation) && !opts.noRead {
		if se := e.readTargets(ctx, pl.Name, h, ent, loc, r, cs); se != nil {
			return fail(*se)
		}
	}

	// 4. Post-process.
	for _, s := range h.post {
		if !defines(s, "postProcessEntity") {
			continue
		}
		done := false
		start := time.Now()
		next, err := s.PostProcessEntity(ctx, ent, loc, emitFor(&done), cs.forStage(s.Name()))
		done = true
		e.obs.hook(pl.Name, s.Name(), "postProcessEntity", start, err)
		if err != nil {
			return fail(stageError(s.Name(), "postProcessEntity", err))
		}
		if next == nil {
			return fail(stageError(s.Name(), "postProcessEntity", errors.New("returned no entity")))
		}
		ent = next
	}

	// 5. Outcome.
	// The store adds relations, status, uid and etag when it stitches.
	ent.Relations, ent.Status, ent.Metadata.UID, ent.Metadata.Etag = nil, nil, "", ""
	processed, err := ent.MarshalJSON()
	if err != nil {
		return fail(serialize(GeneralError("encode processed entity: %v", err)))
	}
	cache, err := cs.encode()
	if err != nil {
		return fail(serialize(GeneralError("%v", err)))
	}
	out.OK = true
	out.Processed = processed
	out.Errors = r.errs
	out.Cache = cache
	out.Children = r.children
	out.KeepOldChildren = r.emitErr
	for l := range r.keepLoc {
		out.KeepLocations = append(out.KeepLocations, l)
	}
	slices.Sort(out.KeepLocations)
	for rel := range r.rels {
		out.Relations = append(out.Relations, rel)
	}
	slices.SortFunc(out.Relations, func(a, b store.Relation) int {
		return cmp.Or(strings.Compare(a.Source, b.Source), strings.Compare(a.Type, b.Type), strings.Compare(a.Target, b.Target))
	})
	for k := range r.keys {
		out.RefreshKeys = append(out.RefreshKeys, k)
	}
	slices.Sort(out.RefreshKeys)
	childSigs := make([]string, len(out.Children))
	for i, c := range out.Children {
		childSigs[i] = c.Ref + " " + c.Hash + " " + c.LocationKey
	}
	slices.Sort(childSigs)
	var oh outcomeHash
	oh.init("ok")
	oh.bytes(processed)
	oh.int(len(out.Relations))
	for _, rel := range out.Relations {
		oh.str(rel.Source)
		oh.str(rel.Type)
		oh.str(rel.Target)
	}
	oh.strs(childSigs)
	oh.errors(out.Errors)
	oh.strs(out.RefreshKeys)
	oh.bytes(cache)
	oh.bool(out.KeepOldChildren)
	oh.strs(out.KeepLocations)
	out.ResultHash = oh.sum()
	if memo {
		out.Memo = memoOf(fp, src)
	}
	return out
}

// readTargets is Backstage's special Location step: every target of the
// Location entity, resolved against the entity's own location, is read by
// the first stage that handles its type.
func (e *Engine) readTargets(ctx context.Context, pipeline string, h *hooks, ent *catalog.Entity, loc Location, r *run, cs *caches) *catalog.SerializedError {
	typ, _ := ent.Spec["type"].(string)
	if typ == "" {
		typ = loc.Type
	}
	var targets []string
	if t, ok := ent.Spec["target"].(string); ok && t != "" {
		targets = append(targets, t)
	}
	if ts, ok := ent.Spec["targets"].([]any); ok {
		for _, t := range ts {
			if s, ok := t.(string); ok && s != "" {
				targets = append(targets, s)
			}
		}
	}
	optional := ent.Spec["presence"] == "optional"
	// Resolve every target first: a bad one fails the entity before any read.
	locs := make([]Location, 0, len(targets))
	for _, raw := range targets {
		target, err := resolveTarget(typ, raw, loc)
		if err != nil {
			se := serialize(InputError("location %s: %v", ent.Ref(), err))
			return &se
		}
		locs = append(locs, Location{Type: typ, Target: target})
	}
	// Targets are read in parallel (a Location listing many files would
	// otherwise parse them all on one core), each into its own buffer; the
	// buffers are then replayed in target order, so the outcome does not
	// depend on timing.
	reads := make([]targetRead, len(locs))
	if len(locs) == 1 {
		reads[0] = e.readTarget(ctx, pipeline, h, locs[0], optional, r.ref, r.prepareChild, cs)
	} else {
		sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
		var wg sync.WaitGroup
		for i, l := range locs {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				reads[i] = e.readTarget(ctx, pipeline, h, l, optional, r.ref, r.prepareChild, cs)
			})
		}
		wg.Wait()
	}
	for _, rd := range reads {
		if rd.fail != nil {
			return rd.fail
		}
	}
	for _, rd := range reads {
		for _, res := range rd.results {
			r.emit(res)
		}
	}
	return nil
}

// targetRead is what reading one target of a Location produced: its
// results in emit order, or the failure that fails the Location.
type targetRead struct {
	results []Result
	fail    *catalog.SerializedError
}

// readTarget reads one target through the first stage that handles its
// type, and records the read in the location status.
//
// Emitted entities are prepared (prep) as they come, in the reading
// goroutine.
func (e *Engine) readTarget(ctx context.Context, pipeline string, h *hooks, l Location, optional bool, ref string, prep func(EntityResult) Result, cs *caches) targetRead {
	var out targetRead
	trace := &reading.Trace{}
	tctx := reading.WithTrace(ctx, trace)
	entities := 0
	status := func(err error) {
		s := LocationStatus{Pipeline: pipeline, Location: l, Entity: ref, LastRead: e.now(),
			Requests: trace.Requests.Load(), NotModified: trace.NotModified.Load(), Entities: entities}
		if err != nil {
			s.LastError = err.Error()
		}
		e.obs.locationRead(s)
	}
	for _, s := range h.readers {
		if !defines(s, "readLocation") {
			continue
		}
		done := false
		emit := func(res Result) {
			if done {
				e.log.Warn("ignoring a result emitted after its hook returned", "entity", ref, "stage", s.Name())
				return
			}
			if er, ok := res.(EntityResult); ok {
				entities++
				if res = prep(er); res == nil {
					return
				}
			}
			out.results = append(out.results, res)
		}
		start := time.Now()
		ok, err := s.ReadLocation(tctx, l, optional, emit, cs.forTarget(s.Name(), l.Target))
		done = true
		e.obs.hook(pipeline, s.Name(), "readLocation", start, err)
		var pe *ProcessingError
		switch {
		case err != nil && errors.As(err, &pe) && pe.Name == NotFoundErrorName:
			// A missing source is not a failed read: record it, and let
			// the entities that came from it go.
			out.results = append(out.results, ErrorResult{Location: l, Err: err})
			status(err)
			return out
		case err != nil:
			status(err)
			se := stageError(s.Name(), "readLocation "+l.String(), err)
			out.fail = &se
			return out
		case ok:
			status(nil)
			return out
		}
	}
	se := serialize(InputError("no stage was able to read location %s; add a stage that reads %q locations to the pipeline", l, l.Type))
	out.fail = &se
	return out
}

// resolveTarget makes a Location target absolute: relative file targets
// join the folder of the entity's own file location; relative url targets
// resolve against its url.
func resolveTarget(typ, target string, base Location) (string, error) {
	switch typ {
	case "file":
		if strings.HasSuffix(target, "/") || strings.HasSuffix(target, string(filepath.Separator)) {
			return "", fmt.Errorf("file target %q is a folder; name a file or a glob such as %q", target, target+"*.yaml")
		}
		if filepath.IsAbs(target) {
			return filepath.Clean(target), nil
		}
		if base.Type != "file" {
			return "", fmt.Errorf("relative file target %q needs a file location to resolve against, not %s", target, base)
		}
		return filepath.Join(filepath.Dir(base.Target), target), nil
	case "url":
		u, err := url.Parse(target)
		if err != nil {
			return "", fmt.Errorf("url target %q: %w", target, err)
		}
		if u.IsAbs() {
			return target, nil
		}
		if base.Type != "url" {
			return "", fmt.Errorf("relative url target %q needs a url location to resolve against, not %s", target, base)
		}
		b, err := url.Parse(base.Target)
		if err != nil {
			return "", fmt.Errorf("base url %q: %w", base.Target, err)
		}
		return b.ResolveReference(u).String(), nil
	}
	return target, nil
}

// outcomeHash is the sha1 of an outcome's parts, each written with its
// length in front so that different outcomes never feed the same bytes. It
// replaced a JSON encoding of the parts, which cost a tenth of processing.
type outcomeHash struct {
	h hash.Hash
	// buf holds a length, or a string on its way into h: sha1 has no
	// WriteString, and io.WriteString's conversions were ~1% of a cold
	// ingest's allocation.
	buf [128]byte
}

func (o *outcomeHash) init(kind string) {
	o.h = sha1.New()
	o.str(kind)
}

func (o *outcomeHash) int(n int) { o.h.Write(binary.AppendUvarint(o.buf[:0], uint64(n))) }

func (o *outcomeHash) bytes(b []byte) {
	o.int(len(b))
	o.h.Write(b)
}

func (o *outcomeHash) str(s string) {
	o.int(len(s))
	for len(s) > 0 {
		n := copy(o.buf[:], s)
		o.h.Write(o.buf[:n])
		s = s[n:]
	}
}

func (o *outcomeHash) strs(ss []string) {
	o.int(len(ss))
	for _, s := range ss {
		o.str(s)
	}
}

func (o *outcomeHash) bool(b bool) {
	if b {
		o.int(1)
	} else {
		o.int(0)
	}
}

func (o *outcomeHash) errors(es []catalog.SerializedError) {
	o.int(len(es))
	for _, e := range es {
		o.str(e.Name)
		o.str(e.Message)
		o.str(e.Stack)
	}
}

func (o *outcomeHash) sum() string { return hex.EncodeToString(o.h.Sum(nil)) }
