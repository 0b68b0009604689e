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
	return fromJSAt(v, &pathNode{key: prefix, index: -1}, 0)
}

// pathNode is one step of the path to a value; the path string is only
// built for an error.
type pathNode struct {
	parent *pathNode
	key    string
	index  int // -1 for object keys
}

func (p *pathNode) String() string {
	if p == nil {
		return ""
	}
	var parts []*pathNode
	for n := p; n != nil; n = n.parent {
		parts = append(parts, n)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		n := parts[i]
		switch {
		case n.index >= 0:
			b.WriteString("[" + strconv.Itoa(n.index) + "]")
		case n.key == "":
		case b.Len() > 0:
			b.WriteString("." + n.key)
		default:
			b.WriteString(n.key)
		}
	}
	return b.String()
}

func fromJSAt(v goja.Value, at *pathNode, depth int) (any, error) {
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
				return nil, &valueError{at.String(), fmt.Sprintf("%v is not a JSON number", x)}
			}
			return x, nil
		default:
			return nil, &valueError{at.String(), "is a " + jsTypeName(v) + ", not a JSON value"}
		}
	}
	if depth >= maxDepth {
		return nil, &valueError{shortPath(at.String()), fmt.Sprintf("is nested more than %d levels deep (does an object contain itself?)", maxDepth)}
	}
	switch cls := obj.ClassName(); cls {
	case "Array":
		n := int(obj.Get("length").ToInteger())
		out := make([]any, n)
		for i := 0; i < n; i++ {
			x, err := fromJSAt(obj.Get(strconv.Itoa(i)), &pathNode{parent: at, index: i}, depth+1)
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
			item := obj.Get(k)
			if item == nil || goja.IsUndefined(item) {
				continue
			}
			x, err := fromJSAt(item, &pathNode{parent: at, key: k, index: -1}, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	case "Function":
		return nil, &valueError{at.String(), "is a function, not a JSON value"}
	default:
		return nil, &valueError{at.String(), "is a " + cls + ", not a JSON value (convert it first, for example with toISOString() or Object.fromEntries())"}
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
// from the struct to save ToMap's copy of the whole entity, which is a
// sixth of the cost of a call.
func entityToJS(vm *goja.Runtime, e *catalog.Entity) goja.Value {
	o := vm.NewObject()
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
	for _, k := range keys {
		var v goja.Value
		switch k {
		case "apiVersion":
			v = vm.ToValue(e.APIVersion)
		case "kind":
			v = vm.ToValue(e.Kind)
		case "metadata":
			v = metadataToJS(vm, &e.Metadata)
		case "spec":
			v = toJSDepth(vm, e.Spec, 1)
		case "relations", "status":
			// Rare on the way in (the engine strips them); not worth a
			// second renderer.
			v = toJSDepth(vm, e.ToMap()[k], 1)
		default:
			v = toJSDepth(vm, e.Extra[k], 1)
		}
		_ = o.Set(k, v)
	}
	return o
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
func entityFromJS(v goja.Value) (*catalog.Entity, error) {
	if o, ok := v.(*goja.Object); !ok || o.ClassName() != "Object" {
		return nil, fmt.Errorf("expected an entity object, got %s", describe(v))
	}
	m, err := fromJS(v, "")
	if err != nil {
		return nil, err
	}
	return catalog.FromMap(m.(map[string]any))
}

// locationToJS renders a location as {type, target}, Backstage's
// LocationSpec.
func locationToJS(vm *goja.Runtime, typ, target string) *goja.Object {
	o := vm.NewObject()
	_ = o.Set("type", typ)
	_ = o.Set("target", target)
	return o
}
