package scripting

import (
	"github.com/dop251/goja"

	"github.com/catalog-pipeline/pipeline/catalog"
	"github.com/catalog-pipeline/pipeline/engine"
)

// Building JS objects is what a hook call costs: goja spends about 0.4 µs
// per property on this kind of machine, and an entity has forty or so. Most
// hooks look at a few fields (a kind, an annotation) and many return the
// entity they were given, so the two big parts of an entity, metadata and
// spec, are built only when the script reads them:
//
//   - the entity object gets `metadata` and `spec` as accessor properties
//     (in their sorted place among the other keys); the first read builds
//     the native object and turns the property into a plain data property,
//     so that from then on it is an ordinary object;
//   - assigning the property replaces it the same way;
//   - when the result is converted back, a part that was never read is
//     taken from the Go entity as it is, without a round trip through JS.
//
// Everything a script can observe stays as with eager objects (key order,
// Object.keys, JSON.stringify, spread, value semantics), with two
// exceptions: Object.getOwnPropertyDescriptor shows an accessor until the
// first read, and a part never read during its call cannot be read from a
// later call (the entity object was stashed in a module variable): that
// read throws a TypeError saying so, instead of racing with the engine,
// which owns the Go entity once the call is over.

// lazyKeys are the entity parts built on first read.
var lazyKeys = [2]string{"metadata", "spec"}

// lazyParts switches lazy parts on; benchmarks turn it off to measure the
// eager conversion.
var lazyParts = true

// lazyEntity is an entity object of the current call whose parts may not
// be built yet.
type lazyEntity struct {
	obj *goja.Object
	e   *catalog.Entity
	// val holds a part once built or assigned; nil while untouched.
	val [len(lazyKeys)]goja.Value
}

// installLazy creates the shared getters and setters of the lazy parts and
// the sentinel they return while a result is converted.
func (rt *jsRuntime) installLazy() {
	for i := range lazyKeys {
		rt.untouched[i] = rt.vm.NewObject()
		rt.lazyGet[i] = rt.vm.ToValue(func(c goja.FunctionCall) goja.Value { return rt.getPart(c.This, i) })
		rt.lazySet[i] = rt.vm.ToValue(func(c goja.FunctionCall) goja.Value {
			rt.setPart(c.This, i, c.Argument(0))
			return goja.Undefined()
		})
	}
}

// lazyOf finds the lazy entity o is, in the current call.
func (rt *jsRuntime) lazyOf(o goja.Value) *lazyEntity {
	if rt.call == nil {
		return nil
	}
	for _, le := range rt.call.lazy {
		if goja.Value(le.obj) == o {
			return le
		}
	}
	return nil
}

func (rt *jsRuntime) getPart(this goja.Value, i int) goja.Value {
	le := rt.lazyOf(this)
	if le == nil {
		rt.typeError("entity.%s was not read during the hook call that received this entity, and is no longer available; copy what you need from an entity while its hook runs", lazyKeys[i])
	}
	if v := le.val[i]; v != nil {
		return v
	}
	if rt.call.inspect == this {
		return rt.untouched[i]
	}
	var v goja.Value
	if i == 0 {
		v = metadataToJS(rt.vm, &le.e.Metadata)
	} else {
		v = toJSDepth(rt.vm, le.e.Spec, 1)
	}
	le.val[i] = v
	// Fails on a frozen entity; the getter then keeps answering.
	_ = le.obj.DefineDataProperty(lazyKeys[i], v, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
	return v
}

func (rt *jsRuntime) setPart(this goja.Value, i int, v goja.Value) {
	le := rt.lazyOf(this)
	if le == nil {
		rt.typeError("entity.%s cannot be set on an entity from an earlier hook call", lazyKeys[i])
	}
	le.val[i] = v
	_ = le.obj.DefineDataProperty(lazyKeys[i], v, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
}

// entityArg renders the entity a hook receives: eagerly built except for
// its metadata and spec, which are built when read.
func (rt *jsRuntime) entityArg(e *catalog.Entity) goja.Value {
	if !lazyParts {
		return entityToJS(rt.vm, e)
	}
	vm := rt.vm
	le := &lazyEntity{e: e}
	o := vm.NewObject()
	le.obj = o
	for _, k := range entityKeys(e) {
		switch k {
		case "metadata":
			_ = o.DefineAccessorProperty(k, rt.lazyGet[0], rt.lazySet[0], goja.FLAG_TRUE, goja.FLAG_TRUE)
		case "spec":
			_ = o.DefineAccessorProperty(k, rt.lazyGet[1], rt.lazySet[1], goja.FLAG_TRUE, goja.FLAG_TRUE)
		default:
			_ = o.Set(k, entityPartToJS(vm, e, k))
		}
	}
	rt.call.lazy = append(rt.call.lazy, le)
	return o
}

// entityResult converts an entity a hook returned or emitted. Parts of the
// call's own entity objects that were never read come from the Go entity:
// shared is then true, and the entity shares maps with the one the hook was
// given (which the engine drops once the hook returns).
func (rt *jsRuntime) entityResult(v goja.Value) (e *catalog.Entity, shared bool, err error) {
	if rt.call == nil || len(rt.call.lazy) == 0 {
		e, err = entityFromJS(v, nil)
		return e, false, err
	}
	conv := &converter{rt: rt}
	e, err = entityFromJS(v, conv)
	return e, conv.shared, err
}

// converter carries what a conversion of JS values back to Go needs to
// know about lazy entity objects.
type converter struct {
	rt     *jsRuntime
	shared bool
}

// get reads o[k]. Reading a lazy part of one of the call's entity objects
// this way (and only this way: not from a getter of the script's) yields a
// marker for an untouched part, which part recognises.
func (c *converter) get(o *goja.Object, k string) goja.Value {
	if c == nil {
		return o.Get(k)
	}
	c.rt.call.inspect = o
	v := o.Get(k)
	c.rt.call.inspect = nil
	return v
}

// part recognises the value a lazy getter returns, while a result is
// converted, for a part that was never read: it returns the entity and the
// index of the part (in lazyKeys).
func (c *converter) part(o *goja.Object, item goja.Value) (le *lazyEntity, i int, ok bool) {
	if c == nil {
		return nil, 0, false
	}
	for i := range lazyKeys {
		if item == goja.Value(c.rt.untouched[i]) {
			if le = c.rt.lazyOf(o); le != nil {
				c.shared = true
				return le, i, true
			}
		}
	}
	return nil, 0, false
}

// partValue is the JSON-shaped value of an untouched part, for the general
// conversion (copied: the general path ends in FromMap, which keeps what it
// is given).
func partValue(le *lazyEntity, i int) any {
	if i == 0 {
		return (&catalog.Entity{Metadata: le.e.Metadata}).ToMap()["metadata"]
	}
	return catalog.CloneValue(le.e.Spec)
}

// location returns the frozen JS object of a location, shared by the calls
// of this runtime: hooks see the same few locations again and again, and a
// frozen object cannot carry anything from one call to the next.
func (rt *jsRuntime) location(l engine.Location) goja.Value {
	if o, ok := rt.locs[l]; ok {
		return o
	}
	o := locationToJS(rt.vm, l.Type, l.Target)
	if _, err := rt.freezeOne(goja.Undefined(), o); err != nil {
		panic(err)
	}
	if len(rt.locs) >= 256 {
		clear(rt.locs)
	}
	rt.locs[l] = o
	return o
}
