package scripting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dop251/goja"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/reading"
)

// install defines the globals every hook sees. They are installed once per
// runtime and read the per-call state from rt.call, so that nothing a call
// passes stays reachable from JS after it. The globals are read-only, so
// that a script cannot break them for its own later calls by accident.
func (rt *jsRuntime) install() {
	vm := rt.vm
	helpersV, err := vm.RunProgram(prelude)
	if err != nil {
		panic(err)
	}
	helpers := helpersV.(*goja.Object)
	rt.errorCtor = vm.Get("Error")
	rt.errorClasses = map[string]goja.Value{}
	for _, n := range []string{"InputError", "NotFoundError", "NotModifiedError", "NotAllowedError"} {
		rt.errorClasses[n] = helpers.Get(n)
	}
	rt.responseKind = helpers.Get("response").(*goja.Object)
	rt.freeze, _ = goja.AssertFunction(helpers.Get("deepFreeze"))
	rt.freezeOne, _ = goja.AssertFunction(vm.Get("Object").(*goja.Object).Get("freeze"))
	rt.installLazy()
	frozen := func(v goja.Value) goja.Value {
		out, err := rt.freeze(goja.Undefined(), v)
		if err != nil {
			panic(err)
		}
		return out
	}

	results := vm.NewObject()
	for name, fn := range map[string]func(goja.FunctionCall) goja.Value{
		"entity":        rt.resultEntity,
		"location":      rt.resultLocation,
		"relation":      rt.resultRelation,
		"generalError":  rt.resultError(engine.GeneralErrorName),
		"inputError":    rt.resultError(engine.InputErrorName),
		"notFoundError": rt.resultError(engine.NotFoundErrorName),
		"refresh":       rt.resultRefresh,
	} {
		_ = results.Set(name, fn)
	}
	cache := vm.NewObject()
	_ = cache.Set("get", rt.cacheGet)
	_ = cache.Set("set", rt.cacheSet)
	logger := vm.NewObject()
	_ = logger.Set("debug", rt.logFunc(slog.LevelDebug, false))
	_ = logger.Set("info", rt.logFunc(slog.LevelInfo, false))
	_ = logger.Set("warn", rt.logFunc(slog.LevelWarn, false))
	_ = logger.Set("error", rt.logFunc(slog.LevelError, false))
	console := vm.NewObject()
	_ = console.Set("debug", rt.logFunc(slog.LevelDebug, true))
	_ = console.Set("log", rt.logFunc(slog.LevelInfo, true))
	_ = console.Set("info", rt.logFunc(slog.LevelInfo, true))
	_ = console.Set("warn", rt.logFunc(slog.LevelWarn, true))
	_ = console.Set("error", rt.logFunc(slog.LevelError, true))

	globals := []struct {
		name  string
		value goja.Value
	}{
		{"emit", vm.ToValue(rt.emit)},
		{"results", frozen(results)},
		{"processingResult", results},
		{"read", vm.ToValue(rt.read)},
		{"cache", frozen(cache)},
		{"config", frozen(toJS(vm, rt.s.config))},
		{"log", frozen(logger)},
		{"console", frozen(console)},
	}
	for _, n := range []string{"InputError", "NotFoundError", "NotModifiedError", "NotAllowedError"} {
		globals = append(globals, struct {
			name  string
			value goja.Value
		}{n, rt.errorClasses[n]})
	}
	g := vm.GlobalObject()
	for _, x := range globals {
		if err := g.DefineDataProperty(x.name, x.value, goja.FLAG_FALSE, goja.FLAG_FALSE, goja.FLAG_TRUE); err != nil {
			panic(err)
		}
	}
}

// typeError throws a TypeError; the message is used verbatim.
func (rt *jsRuntime) typeError(format string, args ...any) {
	panic(rt.vm.NewTypeError("%s", fmt.Sprintf(format, args...)))
}

// newError creates an error object of a class the prelude defines (or a
// plain Error), so that scripts can test `e.name` or `instanceof`.
func (rt *jsRuntime) newError(class, msg string) *goja.Object {
	ctor := rt.errorCtor
	if c, ok := rt.errorClasses[class]; ok {
		ctor = c
	}
	o, err := rt.vm.New(ctor, rt.vm.ToValue(msg))
	if err != nil {
		panic(err)
	}
	return o
}

// active returns the state of the hook call in progress; what needs one
// (emit, read, cache) fails at the script's top level.
func (rt *jsRuntime) active(what string) *callState {
	if rt.call == nil {
		panic(rt.newError("Error", what+" can only be used inside a hook (readLocation, preProcessEntity, validateEntityKind, postProcessEntity), not at the top level of the script"))
	}
	return rt.call
}

// ---- emit and results ----

func (rt *jsRuntime) emit(c goja.FunctionCall) goja.Value {
	cs := rt.active("emit")
	if cs.emit == nil {
		rt.typeError("emit is not available in %s", cs.hook)
	}
	res, err := rt.toResult(c.Argument(0))
	if err != nil {
		rt.typeError("emit: %v", err)
	}
	cs.emit(res)
	return goja.Undefined()
}

// toResult converts an emitted object, Backstage's CatalogProcessorResult,
// into the engine's Result.
func (rt *jsRuntime) toResult(v goja.Value) (engine.Result, error) {
	o, ok := v.(*goja.Object)
	if !ok || o.ClassName() != "Object" {
		return nil, fmt.Errorf("expected a result object such as results.entity(...) returns, got %s", describe(v))
	}
	typ, _ := jsString(o.Get("type"))
	switch typ {
	case "entity":
		loc, err := toLocation(o.Get("location"), "location")
		if err != nil {
			return nil, fmt.Errorf("entity result: %w", err)
		}
		ent, shared, err := rt.entityResult(o.Get("entity"))
		if err != nil {
			return nil, fmt.Errorf("entity result: entity: %w", err)
		}
		if shared {
			// The engine annotates the child: it must not share maps with
			// the entity being processed.
			ent = ent.Clone()
		}
		r := engine.EntityResult{Location: loc, Entity: ent}
		switch k := o.Get("locationKey"); {
		case k == nil || goja.IsUndefined(k):
		case goja.IsNull(k):
			r.NoLocationKey = true
		default:
			s, ok := jsString(k)
			if !ok {
				return nil, fmt.Errorf("entity result: locationKey must be a string or null, got %s", describe(k))
			}
			r.LocationKey = s
		}
		return r, nil
	case "location":
		lv := o.Get("location")
		loc, err := toLocation(lv, "location")
		if err != nil {
			return nil, fmt.Errorf("location result: %w", err)
		}
		optional := false
		if lo, ok := lv.(*goja.Object); ok {
			if p := lo.Get("presence"); p != nil && !goja.IsUndefined(p) {
				switch p.String() {
				case "optional":
					optional = true
				case "required":
				default:
					return nil, fmt.Errorf("location result: presence must be \"required\" or \"optional\", got %s", describe(p))
				}
			}
		}
		return engine.LocationResult{Location: loc, Optional: optional}, nil
	case "relation":
		r, ok := o.Get("relation").(*goja.Object)
		if !ok {
			return nil, errors.New("relation result: relation must be an object {source, type, target}")
		}
		return toRelation(r)
	case "error":
		var loc engine.Location
		if lv := o.Get("location"); lv != nil && !goja.IsUndefined(lv) && !goja.IsNull(lv) {
			l, err := toLocation(lv, "location")
			if err != nil {
				return nil, fmt.Errorf("error result: %w", err)
			}
			loc = l
		}
		ev := o.Get("error")
		if ev == nil || goja.IsUndefined(ev) || goja.IsNull(ev) {
			return nil, errors.New("error result: error is missing")
		}
		name, msg := engine.GeneralErrorName, ""
		if eo, ok := ev.(*goja.Object); ok && eo.ClassName() == "Error" {
			n, m, _ := thrown(ev)
			name, msg = n, m
		} else {
			msg = ev.String()
		}
		return engine.ErrorResult{Location: loc, Err: &engine.ProcessingError{Name: name, Message: msg}}, nil
	case "refresh":
		key, ok := jsString(o.Get("key"))
		if !ok || key == "" {
			return nil, fmt.Errorf("refresh result: key must be a non-empty string, got %s", describe(o.Get("key")))
		}
		return engine.RefreshResult{Key: key}, nil
	case "":
		return nil, fmt.Errorf("the result has no type; build it with results.entity, results.location, results.relation, results.generalError, results.inputError, results.notFoundError or results.refresh")
	default:
		return nil, fmt.Errorf("unknown result type %q; the types are entity, location, relation, error and refresh", typ)
	}
}

// toLocation reads a location given as {type, target} or as a
// "type:target" string.
func toLocation(v goja.Value, what string) (engine.Location, error) {
	if o, ok := v.(*goja.Object); ok && o.ClassName() == "Object" {
		typ, _ := jsString(o.Get("type"))
		target, _ := jsString(o.Get("target"))
		if typ == "" || target == "" {
			return engine.Location{}, fmt.Errorf("%s must have a non-empty string type and target, got {type: %s, target: %s}", what, describe(o.Get("type")), describe(o.Get("target")))
		}
		return engine.Location{Type: typ, Target: target}, nil
	}
	if s, ok := jsString(v); ok {
		l, err := engine.ParseLocationRef(s)
		if err != nil {
			return engine.Location{}, fmt.Errorf("%s: %w", what, err)
		}
		return l, nil
	}
	return engine.Location{}, fmt.Errorf("%s must be a location object {type, target}, got %s", what, describe(v))
}

// toRef reads an entity ref given as {kind, namespace?, name} or as a
// "kind:namespace/name" string; the namespace defaults to "default".
func toRef(v goja.Value, what string) (catalog.Ref, error) {
	if o, ok := v.(*goja.Object); ok && o.ClassName() == "Object" {
		kind, _ := jsString(o.Get("kind"))
		name, _ := jsString(o.Get("name"))
		ns := catalog.DefaultNamespace
		if n := o.Get("namespace"); n != nil && !goja.IsUndefined(n) && !goja.IsNull(n) {
			s, ok := jsString(n)
			if !ok {
				return catalog.Ref{}, fmt.Errorf("%s.namespace must be a string, got %s", what, describe(n))
			}
			if s != "" {
				ns = s
			}
		}
		if kind == "" || name == "" {
			return catalog.Ref{}, fmt.Errorf("%s must have a non-empty string kind and name, got {kind: %s, name: %s}", what, describe(o.Get("kind")), describe(o.Get("name")))
		}
		return catalog.Ref{Kind: kind, Namespace: ns, Name: name}, nil
	}
	if s, ok := jsString(v); ok {
		r, err := catalog.ParseRef(s, catalog.RefDefaults{})
		if err != nil {
			return catalog.Ref{}, fmt.Errorf("%s: %w", what, err)
		}
		return r, nil
	}
	return catalog.Ref{}, fmt.Errorf("%s must be an entity ref {kind, namespace, name} or a string such as \"component:default/foo\", got %s", what, describe(v))
}

func toRelation(o *goja.Object) (engine.RelationResult, error) {
	src, err := toRef(o.Get("source"), "relation source")
	if err != nil {
		return engine.RelationResult{}, err
	}
	dst, err := toRef(o.Get("target"), "relation target")
	if err != nil {
		return engine.RelationResult{}, err
	}
	typ, _ := jsString(o.Get("type"))
	if typ == "" {
		return engine.RelationResult{}, fmt.Errorf("relation type must be a non-empty string such as \"ownedBy\", got %s", describe(o.Get("type")))
	}
	return engine.RelationResult{Source: src, Type: typ, Target: dst}, nil
}

func (rt *jsRuntime) refToJS(r catalog.Ref) *goja.Object {
	o := rt.vm.NewObject()
	_ = o.Set("kind", r.Kind)
	_ = o.Set("namespace", r.Namespace)
	_ = o.Set("name", r.Name)
	return o
}

// result builds a plain result object; emit converts it.
func (rt *jsRuntime) result(typ string, kv ...any) *goja.Object {
	o := rt.vm.NewObject()
	_ = o.Set("type", typ)
	for i := 0; i+1 < len(kv); i += 2 {
		_ = o.Set(kv[i].(string), kv[i+1])
	}
	return o
}

// resultEntity is results.entity(location, entity, {locationKey}). The
// entity is kept by reference, as in Backstage: emit converts it, so
// changes made between the two calls count.
func (rt *jsRuntime) resultEntity(c goja.FunctionCall) goja.Value {
	loc, err := toLocation(c.Argument(0), "results.entity: location")
	if err != nil {
		rt.typeError("%v", err)
	}
	ent := c.Argument(1)
	if o, ok := ent.(*goja.Object); !ok || o.ClassName() != "Object" {
		rt.typeError("results.entity: entity must be an entity object, got %s", describe(ent))
	}
	o := rt.result("entity", "location", locationToJS(rt.vm, loc.Type, loc.Target), "entity", ent)
	if opts, ok := c.Argument(2).(*goja.Object); ok {
		if k := opts.Get("locationKey"); k != nil && !goja.IsUndefined(k) {
			if _, isStr := jsString(k); !isStr && !goja.IsNull(k) {
				rt.typeError("results.entity: locationKey must be a string or null, got %s", describe(k))
			}
			_ = o.Set("locationKey", k)
		}
	}
	return o
}

// resultLocation is results.location(spec, optional?): spec is {type,
// target, presence?}; optional=true is the old spelling of presence
// "optional".
func (rt *jsRuntime) resultLocation(c goja.FunctionCall) goja.Value {
	loc, err := toLocation(c.Argument(0), "results.location: location")
	if err != nil {
		rt.typeError("%v", err)
	}
	l := locationToJS(rt.vm, loc.Type, loc.Target)
	presence := ""
	if o, ok := c.Argument(0).(*goja.Object); ok {
		if p := o.Get("presence"); p != nil && !goja.IsUndefined(p) {
			presence = p.String()
			if presence != "optional" && presence != "required" {
				rt.typeError("results.location: presence must be \"required\" or \"optional\", got %s", describe(p))
			}
		}
	}
	if c.Argument(1).ToBoolean() {
		presence = "optional"
	}
	if presence != "" {
		_ = l.Set("presence", presence)
	}
	return rt.result("location", "location", l)
}

// resultRelation is results.relation({source, type, target}); refs may be
// objects or strings, and come back as {kind, namespace, name}.
func (rt *jsRuntime) resultRelation(c goja.FunctionCall) goja.Value {
	spec, ok := c.Argument(0).(*goja.Object)
	if !ok {
		rt.typeError("results.relation: expected {source, type, target}, got %s", describe(c.Argument(0)))
	}
	r, err := toRelation(spec)
	if err != nil {
		rt.typeError("results.relation: %v", err)
	}
	rel := rt.vm.NewObject()
	_ = rel.Set("source", rt.refToJS(r.Source))
	_ = rel.Set("type", r.Type)
	_ = rel.Set("target", rt.refToJS(r.Target))
	return rt.result("relation", "relation", rel)
}

// resultError builds results.generalError / inputError / notFoundError.
func (rt *jsRuntime) resultError(name string) func(goja.FunctionCall) goja.Value {
	fn := map[string]string{
		engine.GeneralErrorName:  "results.generalError",
		engine.InputErrorName:    "results.inputError",
		engine.NotFoundErrorName: "results.notFoundError",
	}[name]
	return func(c goja.FunctionCall) goja.Value {
		loc, err := toLocation(c.Argument(0), fn+": location")
		if err != nil {
			rt.typeError("%v", err)
		}
		m := c.Argument(1)
		if _, ok := jsString(m); !ok {
			rt.typeError("%s: message must be a string, got %s", fn, describe(m))
		}
		class := name
		if name == engine.GeneralErrorName {
			class = "Error"
		}
		return rt.result("error", "location", locationToJS(rt.vm, loc.Type, loc.Target), "error", rt.newError(class, m.String()))
	}
}

func (rt *jsRuntime) resultRefresh(c goja.FunctionCall) goja.Value {
	k := c.Argument(0)
	if s, ok := jsString(k); !ok || s == "" {
		rt.typeError("results.refresh: key must be a non-empty string, got %s", describe(k))
	}
	return rt.result("refresh", "key", k)
}

// ---- read ----

// read is read(target, {etag, headers}): an http(s) URL, a file:// URL, an
// absolute path or a path relative to the pipeline file's folder, read
// through the pipeline's Reader (so its folders and hosts apply) with the
// call's deadline (so the stage timeout also cancels the I/O, which an
// interrupt alone cannot).
func (rt *jsRuntime) read(c goja.FunctionCall) goja.Value {
	cs := rt.active("read")
	tv := c.Argument(0)
	target, ok := jsString(tv)
	if !ok || target == "" {
		rt.typeError("read: target must be a URL or a path, got %s", describe(tv))
	}
	var opts reading.FetchOptions
	if o, ok := c.Argument(1).(*goja.Object); ok {
		if e := o.Get("etag"); e != nil && !goja.IsUndefined(e) && !goja.IsNull(e) {
			s, ok := jsString(e)
			if !ok {
				rt.typeError("read: etag must be a string, got %s", describe(e))
			}
			opts.ETag = s
		}
		if h := o.Get("headers"); h != nil && !goja.IsUndefined(h) && !goja.IsNull(h) {
			ho, ok := h.(*goja.Object)
			if !ok {
				rt.typeError("read: headers must be an object of strings, got %s", describe(h))
			}
			opts.Header = map[string]string{}
			for _, k := range ho.Keys() {
				s, ok := jsString(ho.Get(k))
				if !ok {
					rt.typeError("read: header %q must be a string, got %s", k, describe(ho.Get(k)))
				}
				opts.Header[k] = s
			}
		}
	}
	if rt.s.reader == nil {
		panic(rt.newError("NotAllowedError", "read "+target+": this pipeline allows no reads"))
	}
	ctx, cancel := context.WithDeadline(cs.ctx, cs.deadline)
	defer cancel()
	resp, err := rt.s.reader.Read(ctx, rt.s.resolve(target), opts)
	if err != nil {
		if !time.Now().Before(cs.deadline) {
			// The call is out of time: end it, uncatchably, rather than
			// let the script catch the read error and carry on.
			rt.vm.Interrupt(errTimeout)
		}
		panic(rt.readError(ctx, target, resp, err))
	}
	return rt.response(resp)
}

// resolve makes a relative file path absolute against the folder of the
// pipeline file; URLs and absolute paths pass through.
func (s *Stage) resolve(target string) string {
	if strings.Contains(target, "://") || filepath.IsAbs(target) || strings.HasPrefix(target, "/") {
		return target
	}
	return filepath.Join(s.dir(), target)
}

// readError maps a Reader error to the error object a script can test by
// name: NotModifiedError (with the etag, so the script can use its cache),
// NotFoundError, NotAllowedError, or Error.
func (rt *jsRuntime) readError(ctx context.Context, target string, resp *reading.Response, err error) *goja.Object {
	var o *goja.Object
	switch {
	case errors.Is(err, reading.ErrNotModified):
		o = rt.newError("NotModifiedError", err.Error())
		_ = o.Set("status", http.StatusNotModified)
		if resp != nil {
			_ = o.Set("etag", resp.ETag)
		}
	case errors.Is(err, reading.ErrNotFound):
		o = rt.newError("NotFoundError", err.Error())
		_ = o.Set("status", http.StatusNotFound)
	case errors.Is(err, reading.ErrNotAllowed):
		o = rt.newError("NotAllowedError", err.Error())
	case ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded):
		o = rt.newError("Error", fmt.Sprintf("read %s: the stage timeout of %s ran out: %v", target, rt.s.timeout, err))
	default:
		o = rt.newError("Error", err.Error())
	}
	return o
}

// response renders a Response as {status, etag, headers, body, url} with
// text() and json() from a shared prototype.
func (rt *jsRuntime) response(resp *reading.Response) goja.Value {
	vm := rt.vm
	o := vm.CreateObject(rt.responseKind)
	_ = o.Set("status", resp.Status)
	if resp.ETag != "" {
		_ = o.Set("etag", resp.ETag)
	} else {
		_ = o.Set("etag", goja.Null())
	}
	h := vm.NewObject()
	names := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		_ = h.Set(strings.ToLower(k), strings.Join(resp.Header[k], ", "))
	}
	_ = o.Set("headers", h)
	_ = o.Set("body", string(resp.Body))
	_ = o.Set("url", resp.URL)
	return o
}

// ---- cache ----

func (rt *jsRuntime) cacheGet(c goja.FunctionCall) goja.Value {
	cs := rt.active("cache.get")
	if cs.cache == nil {
		rt.typeError("cache is not available in %s", cs.hook)
	}
	k := c.Argument(0)
	key, ok := jsString(k)
	if !ok {
		rt.typeError("cache.get: key must be a string, got %s", describe(k))
	}
	v, found := cs.cache.Get(key)
	if !found {
		return goja.Undefined()
	}
	return toJS(rt.vm, v)
}

func (rt *jsRuntime) cacheSet(c goja.FunctionCall) goja.Value {
	cs := rt.active("cache.set")
	if cs.cache == nil {
		rt.typeError("cache is not available in %s", cs.hook)
	}
	k := c.Argument(0)
	key, ok := jsString(k)
	if !ok {
		rt.typeError("cache.set: key must be a string, got %s", describe(k))
	}
	v := c.Argument(1)
	if goja.IsUndefined(v) {
		rt.typeError("cache.set(%q): the value is undefined; store null or delete nothing", key)
	}
	x, err := fromJS(v, "")
	if err != nil {
		rt.typeError("cache.set(%q): the value must be JSON: %v", key, err)
	}
	cs.cache.Set(key, x)
	return goja.Undefined()
}

// ---- log ----

// logFunc builds log.<level>(message, fields?) or, with console set,
// console.<level>(...args), which joins its arguments like Node.js. Lines
// go to the stage's logger (tagged with pipeline and stage) with the hook
// and the entity or location being processed.
func (rt *jsRuntime) logFunc(level slog.Level, console bool) func(goja.FunctionCall) goja.Value {
	return func(c goja.FunctionCall) goja.Value {
		var attrs []any
		if rt.call != nil {
			attrs = rt.call.logAttrs()
		}
		var msg string
		if console {
			parts := make([]string, len(c.Arguments))
			for i, a := range c.Arguments {
				parts[i] = logText(a)
			}
			msg = strings.Join(parts, " ")
		} else {
			msg = logText(c.Argument(0))
			if f, ok := c.Argument(1).(*goja.Object); ok {
				keys := f.Keys()
				slices.Sort(keys)
				for _, k := range keys {
					v := f.Get(k)
					x, err := fromJS(v, "")
					if err != nil {
						x = v.String()
					}
					attrs = append(attrs, k, x)
				}
			}
		}
		ctx := context.Background()
		if rt.call != nil {
			ctx = rt.call.ctx
		}
		rt.s.log.Log(ctx, level, msg, attrs...)
		return goja.Undefined()
	}
}

// logText renders a logged value: strings as they are, errors with their
// stack, anything else as compact JSON when it is JSON.
func logText(v goja.Value) string {
	if v == nil || goja.IsUndefined(v) {
		return "undefined"
	}
	if o, ok := v.(*goja.Object); ok {
		if o.ClassName() == "Error" {
			if st := o.Get("stack"); st != nil && !goja.IsUndefined(st) {
				return st.String()
			}
			return v.String()
		}
		if x, err := fromJS(v, ""); err == nil {
			return compactJSON(x)
		}
	}
	return v.String()
}

func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
