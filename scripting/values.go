package scripting

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/dop251/goja"

	"github.com/catalog-pipeline/pipeline/catalog"
)

// maxDepth bounds the nesting of values crossing between Go and JS. Catalog
// data is shallow; anything deeper is almost surely a cycle (an object that
// contains itself), which would otherwise recurse until the stack blows.
const maxDepth = 100

// toJS builds a native JS value from a JSON-shaped Go value. Objects are
// created with NewObject and filled in sorted key order, so that scripts see
// the same key order on every run (Object.keys, JSON.stringify) and get
// value semantics: nothing the script does reaches the Go value. goja's
// ToValue on a Go map would instead wrap it by reference with an unstable
// key order.
func toJS(vm *goja.Runtime, v any) goja.Value {
	return toJSDepth(vm, v, 0)
}

func toJSDepth(vm *goja.Runtime, v any, depth int) goja.Value {
	if depth > maxDepth {
		panic(vm.NewTypeError("value is nested more than %d levels deep", maxDepth))
	}
	switch t := v.(type) {
	case nil:
		return goja.Null()
	case string:
		return vm.ToValue(t)
	case bool:
		return vm.ToValue(t)
	case float64:
		return vm.ToValue(t)
	case int:
		return vm.ToValue(t)
	case int64:
		return vm.ToValue(t)
	case map[string]any:
		o := vm.NewObject()
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			_ = o.Set(k, toJSDepth(vm, t[k], depth+1))
		}
		return o
	case []any:
		items := make([]any, len(t))
		for i, x := range t {
			items[i] = toJSDepth(vm, x, depth+1)
		}
		return vm.NewArray(items...)
	case map[string]string:
		o := vm.NewObject()
		for _, k := range catalog.SortedKeys(t) {
			_ = o.Set(k, t[k])
		}
		return o
	case []string:
		items := make([]any, len(t))
		for i, x := range t {
			items[i] = x
		}
		return vm.NewArray(items...)
	case json.Number:
		if f, err := t.Float64(); err == nil {
			return vm.ToValue(f)
		}
		return vm.ToValue(t.String())
	default:
		// Anything else (ints of other widths, structs a Go cache may
		// hold) goes through JSON, so that JS still gets plain values.
		if x, ok := normalizeNumber(v); ok {
			return vm.ToValue(x)
		}
		b, err := json.Marshal(v)
		if err != nil {
			panic(vm.NewTypeError("cannot convert a Go %T to a JavaScript value: %v", v, err))
		}
		var back any
		if err := json.Unmarshal(b, &back); err != nil {
			panic(vm.NewTypeError("cannot convert a Go %T to a JavaScript value: %v", v, err))
		}
		return toJSDepth(vm, back, depth+1)
	}
}

func normalizeNumber(v any) (any, bool) {
	switch t := v.(type) {
	case int8:
		return int(t), true
	case int16:
		return int(t), true
	case int32:
		return int(t), true
	case uint8:
		return int(t), true
	case uint16:
		return int(t), true
	case uint32:
		return int(t), true
	case uint:
		return float64(t), true
	case uint64:
		return float64(t), true
	case float32:
		return float64(t), true
	}
	return nil, false
}

// valueError is a value that cannot cross from JS to Go, named by its path
// ("metadata.labels.team", "spec.items[3]") so that the script author can
// find it.
type valueError struct {
	path string
	msg  string
}

func (e *valueError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

// fromJS turns a JS value into a JSON-shaped Go value (map[string]any,
// []any, string, float64, int, bool, nil), following JSON.stringify's rules
// where they are harmless and refusing what JSON cannot carry:
//
//   - undefined object properties are left out, undefined array items become
//     null (as JSON.stringify does);
//   - functions, symbols, bigints, NaN and ±Infinity, and objects other
//     than plain objects and arrays (Date, Map, RegExp, Promise, ...) are
//     errors naming the path, rather than silently becoming {} or null;
//   - integers become int, other numbers float64, as catalog.NormalizeValue
//     would make them.
//
// It walks the native objects directly instead of calling Export, because
// Export cannot tell undefined from null and turns cycles into cyclic Go
// maps. Own properties are read, enumerable or not (data objects have no
// others); prefix names the value in errors.
func fromJS(v goja.Value, prefix string) (any, error) {
	w := walker{path: make([]pathElem, 1, 16)}
	w.path[0] = pathElem{key: prefix, index: -1}
	return w.value(v, 0)
}

// walker converts JS values to Go, keeping the path to the value being
// converted on a stack so that only errors pay for building it.
type walker struct {
	path []pathElem
	// conv resolves untouched parts of lazy entity objects; nil outside
	// hook results.
	conv *converter
}

// pathElem is one step of a path: an object key, or an array index when
// index >= 0.
type pathElem struct {
	key   string
	index int
}

func (w *walker) at() string {
	var b strings.Builder
	for _, p := range w.path {
		switch {
		case p.index >= 0:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(p.index))
			b.WriteByte(']')
		case p.key == "":
		case b.Len() > 0:
			b.WriteByte('.')
			b.WriteString(p.key)
		default:
			b.WriteString(p.key)
		}
	}
	return b.String()
}

func (w *walker) value(v goja.Value, depth int) (any, error) {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil, nil
	}
	obj, ok := v.(*goja.Object)
	if !ok {
		switch x := v.Export().(type) {
		case string, bool:
			return x, nil
		case int64:
			if x >= math.MinInt && x <= math.MaxInt {
				return int(x), nil
			}
			return float64(x), nil
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, &valueError{w.at(), fmt.Sprintf("%v is not a JSON number", x)}
			}
			return x, nil
		default:
			return nil, &valueError{w.at(), "is a " + jsTypeName(v) + ", not a JSON value"}
		}
	}
	if depth >= maxDepth {
		return nil, &valueError{shortPath(w.at()), fmt.Sprintf("is nested more than %d levels deep (does an object contain itself?)", maxDepth)}
	}
	switch cls := obj.ClassName(); cls {
	case "Array":
		n := int(obj.Get("length").ToInteger())
		out := make([]any, n)
		for i := 0; i < n; i++ {
			w.path = append(w.path, pathElem{index: i})
			x, err := w.value(obj.Get(strconv.Itoa(i)), depth+1)
			w.path = w.path[:len(w.path)-1]
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case "Object":
		keys := obj.GetOwnPropertyNames()
		out := make(map[string]any, len(keys))
		for _, k := range keys {
			item := w.conv.get(obj, k)
			if item == nil || goja.IsUndefined(item) {
				continue
			}
			if le, i, ok := w.conv.part(obj, item); ok {
				out[k] = partValue(le, i)
				continue
			}
			w.path = append(w.path, pathElem{key: k, index: -1})
			x, err := w.value(item, depth+1)
			w.path = w.path[:len(w.path)-1]
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	case "Function":
		return nil, &valueError{w.at(), "is a function, not a JSON value"}
	default:
		return nil, &valueError{w.at(), "is a " + cls + ", not a JSON value (convert it first, for example with toISOString() or Object.fromEntries())"}
	}
}

// shortPath keeps the start of a very long path, which is all a reader
// needs to find a cycle.
func shortPath(p string) string {
	const keep = 40
	if len(p) <= keep {
		return p
	}
	return p[:keep] + "..."
}

// jsTypeName names a value the way a script author thinks of it: "null",
// "array", "object", "function", or typeof for primitives.
func jsTypeName(v goja.Value) string {
	switch {
	case v == nil || goja.IsUndefined(v):
		return "undefined"
	case goja.IsNull(v):
		return "null"
	}
	if o, ok := v.(*goja.Object); ok {
		switch o.ClassName() {
		case "Array":
			return "array"
		case "Function":
			return "function"
		case "Object":
			return "object"
		default:
			return o.ClassName()
		}
	}
	switch v.Export().(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case int64, float64:
		return "number"
	}
	if goja.IsBigInt(v) {
		return "bigint"
	}
	if _, ok := v.(*goja.Symbol); ok {
		return "symbol"
	}
	return v.ExportType().String()
}

// describe names a value for a "got ..." message: its type, plus a short
// rendering of primitives.
func describe(v goja.Value) string {
	t := jsTypeName(v)
	switch t {
	case "string":
		s := v.String()
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return "string " + strconv.Quote(s)
	case "number", "boolean":
		return t + " " + v.String()
	}
	if o, ok := v.(*goja.Object); ok && o.ExportType() == promiseType {
		return "a promise"
	}
	return t
}

// jsString returns a JS string primitive as a Go string; ok is false for
// anything else, including a missing (nil) property.
func jsString(v goja.Value) (string, bool) {
	if v == nil {
		return "", false
	}
	if _, isObj := v.(*goja.Object); isObj {
		return "", false
	}
	s, ok := v.Export().(string)
	return s, ok
}

// entityToJS renders an entity as a native JS object: the object toJS
// would build from e.ToMap() (same keys, same sorted order), built straight
// from the struct to save ToMap's copy of the whole entity.
func entityToJS(vm *goja.Runtime, e *catalog.Entity) goja.Value {
	o := vm.NewObject()
	for _, k := range entityKeys(e) {
		_ = o.Set(k, entityPartToJS(vm, e, k))
	}
	return o
}

// entityKeys are the root keys of e.ToMap(), sorted.
func entityKeys(e *catalog.Entity) []string {
	keys := make([]string, 0, 6+len(e.Extra))
	add := func(k string, present bool) {
		if present {
			keys = append(keys, k)
		}
	}
	add("apiVersion", e.APIVersion != "")
	add("kind", e.Kind != "")
	add("metadata", true)
	add("spec", e.Spec != nil)
	add("relations", e.Relations != nil)
	add("status", e.Status != nil)
	for k := range e.Extra {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// entityPartToJS renders the root key k of e.
func entityPartToJS(vm *goja.Runtime, e *catalog.Entity, k string) goja.Value {
	switch k {
	case "apiVersion":
		return vm.ToValue(e.APIVersion)
	case "kind":
		return vm.ToValue(e.Kind)
	case "metadata":
		return metadataToJS(vm, &e.Metadata)
	case "spec":
		return toJSDepth(vm, e.Spec, 1)
	case "relations", "status":
		// Rare on the way in (the engine strips them); not worth a second
		// renderer.
		return toJSDepth(vm, e.ToMap()[k], 1)
	default:
		return toJSDepth(vm, e.Extra[k], 1)
	}
}

func metadataToJS(vm *goja.Runtime, md *catalog.Metadata) goja.Value {
	o := vm.NewObject()
	keys := make([]string, 0, 10+len(md.Extra))
	add := func(k string, present bool) {
		if present {
			keys = append(keys, k)
		}
	}
	add("name", md.Name != "")
	add("namespace", md.Namespace != "")
	add("title", md.Title != "")
	add("description", md.Description != "")
	add("uid", md.UID != "")
	add("etag", md.Etag != "")
	add("labels", md.Labels != nil)
	add("annotations", md.Annotations != nil)
	add("tags", md.Tags != nil)
	add("links", md.Links != nil)
	for k := range md.Extra {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		var v goja.Value
		switch k {
		case "name":
			v = vm.ToValue(md.Name)
		case "namespace":
			v = vm.ToValue(md.Namespace)
		case "title":
			v = vm.ToValue(md.Title)
		case "description":
			v = vm.ToValue(md.Description)
		case "uid":
			v = vm.ToValue(md.UID)
		case "etag":
			v = vm.ToValue(md.Etag)
		case "labels":
			v = toJSDepth(vm, md.Labels, 2)
		case "annotations":
			v = toJSDepth(vm, md.Annotations, 2)
		case "tags":
			v = toJSDepth(vm, md.Tags, 2)
		case "links":
			m := (&catalog.Entity{Metadata: catalog.Metadata{Links: md.Links}}).ToMap()
			v = toJSDepth(vm, m["metadata"].(map[string]any)["links"], 2)
		default:
			v = toJSDepth(vm, md.Extra[k], 2)
		}
		_ = o.Set(k, v)
	}
	return o
}

// entityFromJS converts an entity object a script returned or emitted back
// into an Entity. Errors name the field.
func entityFromJS(v goja.Value, conv *converter) (*catalog.Entity, error) {
	o, ok := v.(*goja.Object)
	if !ok || o.ClassName() != "Object" {
		return nil, fmt.Errorf("expected an entity object, got %s", describe(v))
	}
	if e, ok := fastEntity(o, conv); ok {
		return e, nil
	}
	w := walker{path: make([]pathElem, 1, 16), conv: conv}
	w.path[0].index = -1
	m, err := w.value(v, 0)
	if err != nil {
		return nil, err
	}
	return catalog.FromMap(m.(map[string]any))
}

// fastEntity converts the usual shape of an entity (string envelope
// fields, metadata of strings, string maps and string lists, a JSON spec)
// straight into an Entity, without the intermediate maps of fromJS and
// FromMap: that is a quarter of the conversion's allocations. Anything
// else, including every error, makes it give up (ok false), and the general
// path, whose messages name the faulty field, runs instead.
func fastEntity(o *goja.Object, conv *converter) (*catalog.Entity, bool) {
	e := &catalog.Entity{}
	w := walker{path: make([]pathElem, 1, 16), conv: conv}
	w.path[0].index = -1
	for _, k := range o.GetOwnPropertyNames() {
		item := conv.get(o, k)
		if item == nil || goja.IsUndefined(item) {
			continue
		}
		if le, i, ok := conv.part(o, item); ok {
			switch {
			case k != lazyKeys[i]:
				return nil, false
			case i == 0:
				e.Metadata = le.e.Metadata
			default:
				e.Spec = le.e.Spec
			}
			continue
		}
		ok := true
		switch k {
		case "apiVersion":
			e.APIVersion, ok = jsString(item)
		case "kind":
			e.Kind, ok = jsString(item)
		case "metadata":
			mo, isObj := item.(*goja.Object)
			ok = isObj && mo.ClassName() == "Object" && fastMetadata(mo, &e.Metadata, &w)
		case "spec":
			if goja.IsNull(item) {
				continue
			}
			x, err := w.value(item, 1)
			e.Spec, ok = x.(map[string]any)
			ok = ok && err == nil
		default:
			// relations, status and unknown root keys: rare, and
			// FromMap's business.
			ok = false
		}
		if !ok {
			return nil, false
		}
	}
	return e, true
}

func fastMetadata(o *goja.Object, md *catalog.Metadata, w *walker) bool {
	for _, k := range o.GetOwnPropertyNames() {
		item := o.Get(k)
		if item == nil || goja.IsUndefined(item) {
			continue
		}
		ok := true
		switch k {
		case "name":
			md.Name, ok = jsString(item)
		case "namespace":
			md.Namespace, ok = jsString(item)
		case "title":
			md.Title, ok = jsString(item)
		case "description":
			md.Description, ok = jsString(item)
		case "uid":
			md.UID, ok = jsString(item)
		case "etag":
			md.Etag, ok = jsString(item)
		case "labels":
			md.Labels, ok = fastStringMap(item)
		case "annotations":
			md.Annotations, ok = fastStringMap(item)
		case "tags":
			md.Tags, ok = fastStringList(item)
		case "links":
			ok = false
		default:
			x, err := w.value(item, 2)
			if err != nil {
				return false
			}
			if md.Extra == nil {
				md.Extra = map[string]any{}
			}
			md.Extra[k] = x
		}
		if !ok {
			return false
		}
	}
	return true
}

func fastStringMap(v goja.Value) (map[string]string, bool) {
	if goja.IsNull(v) {
		return nil, true
	}
	o, ok := v.(*goja.Object)
	if !ok || o.ClassName() != "Object" {
		return nil, false
	}
	keys := o.GetOwnPropertyNames()
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		item := o.Get(k)
		if item == nil || goja.IsUndefined(item) {
			continue
		}
		s, ok := jsString(item)
		if !ok {
			return nil, false
		}
		out[k] = s
	}
	return out, true
}

func fastStringList(v goja.Value) ([]string, bool) {
	if goja.IsNull(v) {
		return nil, true
	}
	o, ok := v.(*goja.Object)
	if !ok || o.ClassName() != "Array" {
		return nil, false
	}
	n := int(o.Get("length").ToInteger())
	out := make([]string, n)
	for i := range out {
		s, ok := jsString(o.Get(strconv.Itoa(i)))
		if !ok {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

// locationToJS renders a location as {type, target}, Backstage's
// LocationSpec.
func locationToJS(vm *goja.Runtime, typ, target string) *goja.Object {
	o := vm.NewObject()
	_ = o.Set("type", typ)
	_ = o.Set("target", target)
	return o
}
