package scripting

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
)

// The script is wrapped in a function so that its top-level declarations
// stay local to it and `module`/`exports` are parameters, as in Node.js.
// The head has no newline, so line numbers are the file's; columns on the
// first line are corrected in messages (Stage.position).
const (
	wrapperHead = "(function(module, exports, require){"
	wrapperTail = "\n})"
)

// preludeName names the prelude in stacks; its frames are left out of
// error messages.
const preludeName = "<pipeline prelude>"

// prelude defines the parts of the bindings that are easier to write in JS:
// the error classes scripts throw or catch (a thrown InputError or
// NotFoundError keeps its name in the engine), the prototype of read
// responses, and deepFreeze for config. It returns them; Go installs them
// as globals.
var prelude = goja.MustCompile(preludeName, `(function () {
  'use strict';
  function errorClass(name) {
    const C = class extends Error {};
    Object.defineProperty(C, 'name', { value: name });
    Object.defineProperty(C.prototype, 'name', { value: name, writable: true, configurable: true });
    return C;
  }
  const response = {
    text() { return this.body; },
    json() { return JSON.parse(this.body); },
  };
  Object.freeze(response);
  function deepFreeze(o) {
    if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
      Object.freeze(o);
      for (const k of Object.keys(o)) deepFreeze(o[k]);
    }
    return o;
  }
  return {
    InputError: errorClass('InputError'),
    NotFoundError: errorClass('NotFoundError'),
    NotModifiedError: errorClass('NotModifiedError'),
    NotAllowedError: errorClass('NotAllowedError'),
    response: response,
    deepFreeze: deepFreeze,
  };
})()`, true)

// jsRuntime is one prepared goja runtime: bindings installed, script top
// level run, hooks looked up. It is used by one goroutine at a time (the
// pool guarantees it).
type jsRuntime struct {
	s       *Stage
	vm      *goja.Runtime
	ver     *version
	exports *goja.Object
	hooks   [numHooks]goja.Callable
	name    string

	// call is the state of the hook call in progress, nil between calls.
	// The globals read it, so that per-call data never sits in JS globals.
	call *callState

	errorClasses map[string]goja.Value
	errorCtor    goja.Value
	responseKind *goja.Object
	freeze       goja.Callable
	// freezeOne is Object.freeze itself: for objects whose properties are
	// all primitives (locations) it is deepFreeze at a quarter of the
	// cost, which matters because a hook receives a location per call.
	freezeOne goja.Callable

	// Lazy entity parts (lazy.go): shared accessors, and the values they
	// return for untouched parts while a result is converted.
	lazyGet, lazySet [len(lazyKeys)]goja.Value
	untouched        [len(lazyKeys)]*goja.Object
	// locs caches the frozen location objects hooks receive.
	locs map[engine.Location]goja.Value

	// timer bounds each run by the stage timeout; it is created once and
	// re-armed per call. fired is set when it (or ctx) interrupted the vm.
	timer *time.Timer
	fired atomic.Bool
	// cs is the storage of call, reused from call to call.
	cs callState
}

// callState is what the bindings need during one hook call.
type callState struct {
	ctx      context.Context
	deadline time.Time
	hook     hook
	emit     engine.Emit  // nil in validateEntityKind
	cache    engine.Cache // nil in validateEntityKind
	entity   *catalog.Entity
	loc      engine.Location
	hasLoc   bool
	// lazy lists the entity objects of this call whose parts are built on
	// first read; inspect is the object whose properties the conversion of
	// a result is reading, whose lazy getters then report untouched parts
	// instead of building them.
	lazy    []*lazyEntity
	inspect goja.Value
}

// logAttrs tag log lines with what is being processed.
func (c *callState) logAttrs() []any {
	attrs := []any{"hook", c.hook.String()}
	if c.entity != nil {
		attrs = append(attrs, "entity", c.entity.Ref().String())
	}
	if c.hasLoc {
		attrs = append(attrs, "location", c.loc.String())
	}
	return attrs
}

// build compiles a revision of the script and validates it by preparing a
// runtime from it; the runtime is returned for the pool.
func (s *Stage) build(src []byte) (*version, *jsRuntime, error) {
	ver := &version{hash: sha256.Sum256(src)}
	prog, err := s.compile(src)
	if err != nil {
		return nil, nil, err
	}
	ver.prog = prog
	rt, err := s.newRuntime(context.Background(), ver)
	if err != nil {
		return nil, nil, err
	}
	ver.name = rt.name
	for h := range rt.hooks {
		ver.hooks[h] = rt.hooks[h] != nil
	}
	return ver, rt, nil
}

// compile parses and compiles the wrapped script. Inline source maps
// (`//# sourceMappingURL=data:...`, as bundlers emit) are honoured; a
// source map in another file is not read, since the script must not make
// the engine read files outside its policy.
func (s *Stage) compile(src []byte) (*goja.Program, error) {
	code := string(src)
	code = strings.TrimPrefix(code, "\uFEFF")
	if strings.HasPrefix(code, "#!") {
		// Keep the line, lose the shebang, as Node.js does.
		code = "//" + code[2:]
	}
	ast, err := parser.ParseFile(nil, s.display, wrapperHead+code+wrapperTail, 0,
		parser.WithSourceMapLoader(func(string) ([]byte, error) {
			return nil, errors.New("external source maps are not read")
		}))
	if err != nil {
		return nil, s.syntaxError(err)
	}
	prog, err := goja.CompileAST(ast, false)
	if err != nil {
		return nil, s.syntaxError(err)
	}
	return prog, nil
}

// newRuntime prepares a runtime for ver: installs the bindings, runs the
// script's top level (under the stage timeout) and looks up its exports.
func (s *Stage) newRuntime(ctx context.Context, ver *version) (rt *jsRuntime, err error) {
	vm := goja.New()
	vm.SetMaxCallStackSize(s.maxStack)
	rt = &jsRuntime{s: s, vm: vm, ver: ver, locs: map[engine.Location]goja.Value{}}
	defer func() {
		if x := recover(); x != nil {
			s.log.Error("script runtime panicked while loading", "script", s.display, "panic", x, "stack", string(debug.Stack()))
			rt, err = nil, s.scriptError(engine.GeneralErrorName, fmt.Sprintf("loading the script crashed its runtime: %v", x), nil, nil)
		}
	}()
	stop := rt.guard(ctx)
	err = rt.try(func() {
		rt.install()
		rt.load()
	})
	if interrupted := stop(); err == nil && interrupted {
		err = errors.New("interrupted")
	}
	if err != nil {
		if isJSError(err) {
			err = s.hookError("loading the script", err)
		}
		return nil, err
	}
	return rt, nil
}

// load runs the script and collects module.exports.
func (rt *jsRuntime) load() {
	vm := rt.vm
	wrapper, err := vm.RunProgram(rt.ver.prog)
	if err != nil {
		panic(err)
	}
	fn, ok := goja.AssertFunction(wrapper)
	if !ok {
		panic(vm.NewTypeError("the script is not a function body; is there a stray '})'?"))
	}
	module := vm.NewObject()
	exports := vm.NewObject()
	_ = module.Set("exports", exports)
	require := vm.ToValue(func(goja.FunctionCall) goja.Value {
		panic(rt.newError("Error", "require is not available: a script is a single file with no modules; bundle dependencies into it (for example esbuild --bundle --format=cjs)"))
	})
	if _, err := fn(goja.Undefined(), module, exports, require); err != nil {
		panic(err)
	}
	exp, ok := module.Get("exports").(*goja.Object)
	if !ok || exp.ClassName() == "Function" {
		panic(vm.NewTypeError("module.exports must be an object with the hooks, got %s", describe(module.Get("exports"))))
	}
	rt.exports = exp
	for h := hook(0); h < numHooks; h++ {
		v := exp.Get(h.String())
		if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
			continue
		}
		f, ok := goja.AssertFunction(v)
		if !ok {
			panic(vm.NewTypeError("module.exports.%s must be a function, got %s", h.String(), describe(v)))
		}
		rt.hooks[h] = f
	}
	switch n := exp.Get("name"); {
	case n == nil || goja.IsUndefined(n) || goja.IsNull(n):
		// getProcessorName() is how Backstage processors say it.
		if g, ok := goja.AssertFunction(exp.Get("getProcessorName")); ok {
			v, err := g(exp)
			if err != nil {
				panic(err)
			}
			if s, ok := v.Export().(string); ok {
				rt.name = s
			}
		}
	default:
		s, ok := n.Export().(string)
		if !ok {
			panic(vm.NewTypeError("module.exports.name must be a string, got %s", describe(n)))
		}
		rt.name = s
	}
}

// try runs f, turning a JS exception or an interrupt that reaches Go (for
// instance from a getter run by Object.Get) into an error.
func (rt *jsRuntime) try(f func()) (err error) {
	defer func() {
		if x := recover(); x != nil {
			if e, ok := x.(error); ok && isJSError(e) {
				err = e
				return
			}
			panic(x)
		}
	}()
	if ex := rt.vm.Try(f); ex != nil {
		return ex
	}
	return nil
}

// isJSError reports errors that come from the JS side: exceptions,
// interrupts and stack overflows.
func isJSError(err error) bool {
	var (
		exc  *goja.Exception
		intr *goja.InterruptedError
		over *goja.StackOverflowError
	)
	return errors.As(err, &exc) || errors.As(err, &intr) || errors.As(err, &over)
}

// isUncatchable reports errors after which a runtime is not reused.
func isUncatchable(err error) bool {
	var (
		intr *goja.InterruptedError
		over *goja.StackOverflowError
	)
	return errors.As(err, &intr) || errors.As(err, &over)
}

// guard bounds a run of the runtime by the stage timeout and by ctx:
// either interrupts it. stop must be called when the run is over; it
// reports whether an interrupt was (or may still be) delivered, in which
// case the runtime must be discarded: an interrupt that lands after the run
// stays pending and would fail the next one. The timer is the runtime's
// own, re-armed per run: a runtime runs one call at a time, and one whose
// timer may still fire is never run again.
func (rt *jsRuntime) guard(ctx context.Context) (stop func() (interrupted bool)) {
	vm := rt.vm
	rt.fired.Store(false)
	if rt.timer == nil {
		rt.timer = time.AfterFunc(rt.s.timeout, func() {
			rt.fired.Store(true)
			vm.Interrupt(errTimeout)
		})
	} else {
		rt.timer.Reset(rt.s.timeout)
	}
	var stopCtx func() bool
	if ctx.Done() != nil {
		stopCtx = context.AfterFunc(ctx, func() {
			rt.fired.Store(true)
			vm.Interrupt(context.Cause(ctx))
		})
	}
	return func() bool {
		clean := rt.timer.Stop()
		if stopCtx != nil && !stopCtx() {
			clean = false
		}
		if !clean || rt.fired.Load() {
			return true
		}
		vm.ClearInterrupt()
		return false
	}
}

// acquire takes a runtime of the current version from the pool, or
// prepares a new one when none is idle; it waits while the pool is fully
// in use.
func (s *Stage) acquire(ctx context.Context) (*jsRuntime, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	ver := s.cur.Load()
	for {
		select {
		case rt := <-s.idle:
			if rt.ver == ver {
				return rt, nil
			}
			// From a version that was replaced: drop it.
			continue
		default:
		}
		break
	}
	rt, err := s.newRuntime(ctx, ver)
	if err != nil {
		<-s.sem
		return nil, err
	}
	return rt, nil
}

// release gives a runtime back; a runtime that was interrupted or whose
// version was replaced is dropped instead.
func (s *Stage) release(rt *jsRuntime, reuse bool) {
	if reuse && rt.ver == s.cur.Load() {
		select {
		case s.idle <- rt:
		default:
		}
	}
	<-s.sem
}

// offer puts a freshly built runtime into the pool when there is room.
func (s *Stage) offer(rt *jsRuntime) {
	select {
	case s.idle <- rt:
	default:
	}
}

// call runs one hook call: it takes a runtime, installs the call state,
// runs fn under the timeout with panics recovered, and converts JS errors
// into ProcessingErrors with file, line and stack. ran is false when the
// runtime's version does not export the hook.
func (s *Stage) call(ctx context.Context, h hook, cs *callState, fn func(rt *jsRuntime, f goja.Callable) error) (ran bool, err error) {
	rt, err := s.acquire(ctx)
	if err != nil {
		return false, err
	}
	f := rt.hooks[h]
	if f == nil {
		s.release(rt, true)
		return false, nil
	}
	cs.ctx = ctx
	cs.hook = h
	cs.deadline = time.Now().Add(s.timeout)
	cs.lazy = rt.cs.lazy[:0]
	rt.cs = *cs
	rt.call = &rt.cs
	reuse := false
	stop := rt.guard(ctx)
	defer func() {
		interrupted := stop()
		clear(rt.cs.lazy)
		rt.cs = callState{lazy: rt.cs.lazy[:0]}
		rt.call = nil
		if x := recover(); x != nil {
			s.log.Error("script runtime panicked", "script", s.display, "hook", h.String(), "panic", x, "stack", string(debug.Stack()))
			err = s.scriptError(engine.GeneralErrorName, fmt.Sprintf("%s crashed the script runtime: %v", h, x), nil, nil)
			reuse = false
		} else {
			reuse = !interrupted && !isUncatchable(err)
		}
		if err != nil && isJSError(err) {
			err = s.hookError(h.String(), err)
		}
		s.release(rt, reuse)
	}()
	var fnErr error
	if jsErr := rt.try(func() { fnErr = fn(rt, f) }); jsErr != nil {
		return true, jsErr
	}
	return true, fnErr
}

var promiseType = reflect.TypeOf((*goja.Promise)(nil))

// settle resolves what a hook returned when it is a promise (an async
// hook). Promise jobs run when the outermost call returns, so a hook that
// awaits only settled values is settled by now; one that is still pending
// waits on something that cannot happen here (bindings are synchronous,
// there are no timers).
func (rt *jsRuntime) settle(h hook, v goja.Value) (goja.Value, error) {
	o, ok := v.(*goja.Object)
	if !ok || o.ExportType() != promiseType {
		return v, nil
	}
	p := o.Export().(*goja.Promise)
	switch p.State() {
	case goja.PromiseStateFulfilled:
		return p.Result(), nil
	case goja.PromiseStateRejected:
		return nil, rt.s.rejectionError(h.String(), p.Result())
	default:
		return nil, rt.s.scriptError(engine.GeneralErrorName,
			fmt.Sprintf("%s returned a promise that did not settle; read/cache are synchronous, do not await timers", h), nil, nil)
	}
}

// asBool accepts a boolean primitive only.
func asBool(v goja.Value) (bool, bool) {
	if v == nil {
		return false, false
	}
	if _, isObj := v.(*goja.Object); isObj {
		return false, false
	}
	b, ok := v.Export().(bool)
	return b, ok
}
