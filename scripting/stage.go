// Package scripting runs catalog stages written in JavaScript, so that a
// user can add a processor (an in-house inventory reader, an enrichment, a
// validator) by pointing a `stage` block at a .js file, without rebuilding
// the engine.
//
// A script is a CommonJS module whose exports are Backstage's processor
// hooks (readLocation, preProcessEntity, validateEntityKind,
// postProcessEntity) and whose globals are Backstage's helpers (emit,
// results/processingResult) plus read, cache, config and log. The contract
// is documented for script authors in scripts/README.md and typed in
// scripts/pipeline.d.ts.
//
// Scripts run in goja. A goja runtime is single-goroutine and values cannot
// move between runtimes, so each stage compiles its script once into a
// *goja.Program and keeps a fixed-size pool of prepared runtimes (script
// top level already run, bindings installed). Entities cross as arguments
// built as native JS objects, never through globals, and every call is
// bounded by the stage's timeout; a runtime that was interrupted is thrown
// away. The script file is watched by polling on use: a good new version
// replaces the old one for new calls, a broken one is reported and the old
// one keeps running.
package scripting

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/reading"
)

// Defaults of the stage settings.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxCallStack = 1000
	// reloadInterval is how often, at most, a stage stats its script.
	reloadInterval = time.Second
)

// Spec registers the `script` stage type. The configuration loader gives a
// stage block that sets `script` this type, so
//
//	stage "system-x" {
//	  script  = "../scripts/system-x.js"
//	  timeout = "10s"
//	  config  = { base_url = "https://system-x.example.com" }
//	}
//
// is a JavaScript stage named "system-x".
var Spec = engine.StageSpec{
	Name:    "script",
	Summary: "Runs a JavaScript processor (readLocation, preProcessEntity, validateEntityKind, postProcessEntity) from a CommonJS file; see scripts/README.md.",
	Fields: []engine.Field{
		{Name: "script", Type: cty.String, Required: true, Path: true, Check: checkScript,
			Doc: "The JavaScript file, relative to this HCL file. It is reloaded when it changes."},
		{Name: "timeout", Type: cty.String, Default: cty.StringVal("10s"), Check: engine.CheckDuration,
			Doc: "Time limit of one hook call, reads included; a call that runs longer fails and its runtime is discarded. \"0s\" means the default."},
		{Name: "config", Type: cty.DynamicPseudoType, Default: cty.EmptyObjectVal, Check: checkConfig,
			Doc: "An object the script sees as the frozen global `config`."},
		{Name: "pool", Type: cty.Number, Default: cty.NumberIntVal(0), Check: checkNonNegativeInt,
			Doc: "How many runtimes may run this script at once; 0 means one per CPU."},
		{Name: "max_call_stack", Type: cty.Number, Default: cty.NumberIntVal(DefaultMaxCallStack), Check: checkPositiveInt,
			Doc: "Maximum JS call depth, against runaway recursion."},
	},
	New: func(b engine.Build) (engine.Stage, error) {
		s, err := New(b)
		if err != nil {
			return nil, err
		}
		return s, nil
	},
}

func checkScript(v cty.Value) error {
	if strings.TrimSpace(v.AsString()) == "" {
		return errors.New("script must name a JavaScript file")
	}
	return nil
}

func checkConfig(v cty.Value) error {
	t := v.Type()
	if t.IsObjectType() || t.IsMapType() {
		return nil
	}
	return fmt.Errorf("config must be an object, such as config = { base_url = \"https://example.com\" }, not a %s", t.FriendlyName())
}

func checkNonNegativeInt(v cty.Value) error {
	if !isInt(v) || v.AsBigFloat().Sign() < 0 {
		return fmt.Errorf("must be a whole number of 0 or more, not %s", v.AsBigFloat().Text('g', -1))
	}
	return nil
}

func checkPositiveInt(v cty.Value) error {
	if !isInt(v) || v.AsBigFloat().Sign() <= 0 {
		return fmt.Errorf("must be a whole number of 1 or more, not %s", v.AsBigFloat().Text('g', -1))
	}
	return nil
}

func isInt(v cty.Value) bool {
	f := v.AsBigFloat()
	if !f.IsInt() {
		return false
	}
	_, acc := f.Int64()
	return acc == big.Exact
}

// hook identifies one of the four processor hooks.
type hook int

const (
	hookReadLocation hook = iota
	hookPreProcess
	hookValidate
	hookPostProcess
	numHooks
)

// hookNames are the names scripts export the hooks under, as in Backstage.
var hookNames = [numHooks]string{"readLocation", "preProcessEntity", "validateEntityKind", "postProcessEntity"}

func (h hook) String() string { return hookNames[h] }

// version is one compiled, validated revision of the script. Runtimes
// remember the version they were built from, so that a reload retires them.
type version struct {
	prog  *goja.Program
	hash  [sha256.Size]byte
	name  string
	hooks [numHooks]bool
}

// badVersion is a revision of the script that failed to compile or load;
// the previous version keeps running while it is on disk.
type badVersion struct {
	hash [sha256.Size]byte
	msg  string
}

// Stage is a JavaScript stage. It implements every hook interface of the
// engine; a hook the script does not export behaves as if the stage did not
// implement it (ReadLocation handles nothing, the entity hooks return the
// entity unchanged, ValidateEntityKind accepts nothing). It is safe for
// concurrent use: calls beyond the pool size wait for a free runtime.
type Stage struct {
	stage    string
	path     string
	display  string
	baseDir  string
	timeout  time.Duration
	maxStack int
	config   any
	reader   *reading.Reader
	log      *slog.Logger

	cur atomic.Pointer[version]
	bad atomic.Pointer[badVersion]

	// sem holds a token per runtime in use; idle holds prepared runtimes.
	// Both have the pool size as capacity, so at most that many runtimes
	// run, and at most that many wait in idle.
	sem  chan struct{}
	idle chan *jsRuntime

	// reloadEvery is the minimum time between two stats of the script;
	// tests lower it.
	reloadEvery time.Duration
	lastCheck   atomic.Int64
	reloadMu    sync.Mutex
	stamp       fileStamp // guarded by reloadMu
}

type fileStamp struct {
	mod  time.Time
	size int64
}

var (
	_ engine.LocationReader = (*Stage)(nil)
	_ engine.PreProcessor   = (*Stage)(nil)
	_ engine.KindValidator  = (*Stage)(nil)
	_ engine.PostProcessor  = (*Stage)(nil)
)

// New builds a script stage from decoded settings: it reads and compiles
// the script, runs its top level once in a first runtime (which stays in the
// pool) and records which hooks it exports. A syntax error is returned as
// "script FILE:LINE:COL: SyntaxError: ...", an error thrown by the top level
// with its stack, so that the configuration loader can show them as
// diagnostics of the stage block.
func New(b engine.Build) (*Stage, error) {
	path := b.String("script")
	if path == "" {
		return nil, errors.New("the script setting is empty")
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(b.Dir, path)
	}
	path = filepath.Clean(path)
	s := &Stage{
		stage:       b.Stage,
		path:        path,
		display:     displayPath(path),
		baseDir:     b.Dir,
		timeout:     b.Duration("timeout"),
		maxStack:    b.Int("max_call_stack"),
		reader:      b.Reader,
		log:         b.Logger,
		reloadEvery: reloadInterval,
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.maxStack <= 0 {
		s.maxStack = DefaultMaxCallStack
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	pool := b.Int("pool")
	if pool <= 0 {
		pool = runtime.NumCPU()
	}
	s.sem = make(chan struct{}, pool)
	s.idle = make(chan *jsRuntime, pool)
	cfg, err := configValue(b.Settings["config"])
	if err != nil {
		return nil, err
	}
	s.config = cfg

	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("script %s: %w", s.display, unwrapPathError(err))
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("script %s: %w", s.display, unwrapPathError(err))
	}
	s.stamp = fileStamp{st.ModTime(), st.Size()}
	ver, rt, err := s.build(src)
	if err != nil {
		return nil, fmt.Errorf("script %w", err)
	}
	s.cur.Store(ver)
	s.idle <- rt
	s.lastCheck.Store(time.Now().UnixNano())
	return s, nil
}

// displayPath is how messages name the script: relative to the working
// directory when it lies below it ("scripts/x.js"), else absolute.
func displayPath(path string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, path); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return rel
		}
	}
	return path
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// configValue converts the HCL config object into plain JSON-shaped Go
// values, through cty's JSON encoding (which knows every cty type).
func configValue(v cty.Value) (any, error) {
	if v == cty.NilVal || v.IsNull() {
		return map[string]any{}, nil
	}
	if !v.IsWhollyKnown() {
		return nil, errors.New("config is not known when the configuration is loaded")
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return out, nil
}

// Name is the `name` the script exports when it is a non-empty string (as
// Backstage's getProcessorName), else the stage's HCL label. The engine
// scopes caches by it.
func (s *Stage) Name() string {
	if n := s.cur.Load().name; n != "" {
		return n
	}
	return s.stage
}

// dir is the folder relative reads resolve against: the pipeline file's.
func (s *Stage) dir() string {
	if s.baseDir != "" {
		return s.baseDir
	}
	return filepath.Dir(s.path)
}

// Path is the absolute path of the script, for status pages and watchers.
func (s *Stage) Path() string { return s.path }

// Hooks lists the hooks the running version of the script exports, in
// processing order, so that tools can show what a stage does.
func (s *Stage) Hooks() []string {
	ver := s.cur.Load()
	var out []string
	for h := hook(0); h < numHooks; h++ {
		if ver.hooks[h] {
			out = append(out, h.String())
		}
	}
	return out
}

// HasHook reports whether the running version of the script exports the
// named hook ("readLocation", "preProcessEntity", ...). The engine asks
// before calling, so that hooks a script does not define cost nothing and
// are not counted as calls.
func (s *Stage) HasHook(name string) bool {
	ver := s.cur.Load()
	for h := hook(0); h < numHooks; h++ {
		if ver.hooks[h] && hookNames[h] == name {
			return true
		}
	}
	return false
}

// Err reports the problem with the script on disk when it is broken and
// the previous version is still running, or nil.
func (s *Stage) Err() error {
	if b := s.bad.Load(); b != nil {
		return errors.New(b.msg)
	}
	return nil
}

// Pure implements engine.Pure: a script reaches the outside only through
// its bindings, and read goes through the pipeline's reader with the
// hook's context, which records it. A script whose result depends on the
// clock or on Math.random is the exception the engine's always_reprocess
// setting is for.
func (s *Stage) Pure() bool { return true }

// Version implements engine.Versioned: the hash of the script version in
// use, and of a broken newer one if any (whose error entities report), so
// that editing the script makes every entity run again.
func (s *Stage) Version() string {
	s.maybeReload()
	v := hex.EncodeToString(s.cur.Load().hash[:])
	if b := s.bad.Load(); b != nil {
		v += " bad " + hex.EncodeToString(b.hash[:])
	}
	return v
}

// ReadLocation calls the script's readLocation(location, optional). It
// returns what the script returned (true: "I read this location").
func (s *Stage) ReadLocation(ctx context.Context, loc engine.Location, optional bool, emit engine.Emit, cache engine.Cache) (bool, error) {
	s.maybeReload()
	if !s.cur.Load().hooks[hookReadLocation] {
		return false, nil
	}
	handled := false
	cs := &callState{emit: emit, cache: cache, loc: loc, hasLoc: true}
	ran, err := s.call(ctx, hookReadLocation, cs, func(rt *jsRuntime, f goja.Callable) error {
		v, err := f(rt.exports, rt.location(loc), rt.vm.ToValue(optional))
		if err != nil {
			return err
		}
		if v, err = rt.settle(hookReadLocation, v); err != nil {
			return err
		}
		b, ok := asBool(v)
		if !ok {
			return s.returnError(hookReadLocation, "a boolean (true when it read the location, false when the location is not its type)", v)
		}
		handled = b
		return nil
	})
	if ran && (handled || err != nil) {
		s.reportBad(emit, loc)
	}
	return handled, err
}

// PreProcessEntity calls the script's preProcessEntity(entity, location,
// originLocation) and returns the entity it returned. The parts of e the
// script never read are reused, not copied, so the result may share maps
// with e, as with the Go stages that edit e in place.
func (s *Stage) PreProcessEntity(ctx context.Context, e *catalog.Entity, loc engine.Location, emit engine.Emit, cache engine.Cache) (*catalog.Entity, error) {
	return s.processEntity(ctx, hookPreProcess, e, loc, emit, cache)
}

// PostProcessEntity calls the script's postProcessEntity(entity, location)
// and returns the entity it returned (sharing the maps of the parts the
// script never read with e, as PreProcessEntity).
func (s *Stage) PostProcessEntity(ctx context.Context, e *catalog.Entity, loc engine.Location, emit engine.Emit, cache engine.Cache) (*catalog.Entity, error) {
	return s.processEntity(ctx, hookPostProcess, e, loc, emit, cache)
}

func (s *Stage) processEntity(ctx context.Context, h hook, e *catalog.Entity, loc engine.Location, emit engine.Emit, cache engine.Cache) (*catalog.Entity, error) {
	s.maybeReload()
	if !s.cur.Load().hooks[h] {
		return e, nil
	}
	out := e
	cs := &callState{emit: emit, cache: cache, entity: e, loc: loc, hasLoc: true}
	ran, err := s.call(ctx, h, cs, func(rt *jsRuntime, f goja.Callable) error {
		args := [3]goja.Value{rt.entityArg(e), rt.location(loc)}
		n := 2
		if h == hookPreProcess {
			origin := loc
			if o, err := engine.ParseLocationRef(e.Annotation(catalog.AnnotationManagedByOriginLocation)); err == nil {
				origin = o
			}
			args[2] = rt.location(origin)
			n = 3
		}
		v, err := f(rt.exports, args[:n]...)
		if err != nil {
			return err
		}
		if v, err = rt.settle(h, v); err != nil {
			return err
		}
		if o, ok := v.(*goja.Object); !ok || o.ClassName() != "Object" {
			return s.returnError(h, "the entity object", v)
		}
		got, _, err := rt.entityResult(v)
		if err != nil {
			if isJSError(err) {
				return err
			}
			return s.scriptError(engine.GeneralErrorName, fmt.Sprintf("%s returned an invalid entity: %v", h, err), nil, err)
		}
		out = got
		return nil
	})
	if ran {
		s.reportBad(emit, loc)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ValidateEntityKind calls the script's validateEntityKind(entity): true
// accepts the entity, false says the kind is not the script's, a throw says
// the kind is the script's but the entity is invalid.
func (s *Stage) ValidateEntityKind(ctx context.Context, e *catalog.Entity) (bool, error) {
	s.maybeReload()
	if !s.cur.Load().hooks[hookValidate] {
		return false, nil
	}
	accepted := false
	cs := &callState{entity: e}
	_, err := s.call(ctx, hookValidate, cs, func(rt *jsRuntime, f goja.Callable) error {
		v, err := f(rt.exports, rt.entityArg(e))
		if err != nil {
			return err
		}
		if v, err = rt.settle(hookValidate, v); err != nil {
			return err
		}
		b, ok := asBool(v)
		if !ok {
			return s.returnError(hookValidate, "a boolean (true for a valid entity of a kind it knows, false for a kind it does not know)", v)
		}
		accepted = b
		return nil
	})
	return accepted, err
}

// returnError reports a hook that returned something of the wrong type.
// goja does not expose where a function was defined, so the message names
// the script and the hook but no line.
func (s *Stage) returnError(h hook, want string, got goja.Value) error {
	return &engine.ProcessingError{Name: engine.GeneralErrorName,
		Message: fmt.Sprintf("%s: %s must return %s, but it returned %s", s.display, h, want, describe(got))}
}

// reportBad emits, while the script on disk is broken, an error saying so
// on whatever the running version processed, so that the breakage shows in
// the catalog and not only in the log.
func (s *Stage) reportBad(emit engine.Emit, loc engine.Location) {
	b := s.bad.Load()
	if b == nil || emit == nil {
		return
	}
	emit(engine.ErrorResult{Location: loc, Err: &engine.ProcessingError{Name: engine.GeneralErrorName, Message: b.msg}})
}
