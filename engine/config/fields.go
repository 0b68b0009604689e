package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/catalog-pipeline/pipeline/engine"
)

// decodeFields decodes body against fields, the one schema of a block
// (a stage type's StageSpec.Fields, or the loader's own for engine and
// location blocks). Decoding goes through hcldec so that unknown arguments,
// missing required ones and wrong types get HCL's own diagnostics with
// ranges and suggestions. Then, per field: the default is applied when the
// value is null, Path values are resolved against dir, and Check runs, its
// error reported at the attribute (or at def, the block header, when the
// failing value is a default).
//
// The returned map holds every field. ok is false when any diagnostic is an
// error; the map is then best effort (failed values are unknown).
func decodeFields(body hcl.Body, fields []engine.Field, ctx *hcl.EvalContext, dir string, def hcl.Range) (map[string]cty.Value, bool, hcl.Diagnostics) {
	spec := make(hcldec.ObjectSpec, len(fields))
	schema := &hcl.BodySchema{}
	for _, f := range fields {
		spec[f.Name] = &hcldec.AttrSpec{Name: f.Name, Type: f.Type, Required: f.Required}
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: f.Name})
	}
	obj, diags := hcldec.Decode(body, spec, ctx)
	// Only for the ranges of the attributes that are present; hcldec has
	// already reported everything wrong with the body.
	present, _, _ := body.PartialContent(schema)

	out := make(map[string]cty.Value, len(fields))
	for _, f := range fields {
		v := cty.NullVal(f.Type)
		if obj != cty.NilVal && obj.Type().IsObjectType() && obj.Type().HasAttribute(f.Name) {
			v = obj.GetAttr(f.Name)
		}
		var attr *hcl.Attribute
		if present != nil {
			attr = present.Attributes[f.Name]
		}
		if v.IsKnown() && v.IsNull() {
			if f.Required && attr != nil {
				diags = diags.Append(&hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("missing value for %q", f.Name),
					Detail:   fmt.Sprintf("The argument %q is required and must not be null.", f.Name),
					Subject:  attr.Expr.Range().Ptr(),
					Context:  attr.Range.Ptr(),
				})
			}
			if f.Default != cty.NilVal {
				v = f.Default
			}
		}
		if f.Path && v.IsWhollyKnown() {
			v = resolvePaths(dir, v)
		}
		if f.Check != nil && v.IsWhollyKnown() && !v.IsNull() {
			if err := f.Check(v); err != nil {
				d := &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("invalid value for %q", f.Name),
					Detail:   sentence(err.Error()),
					Subject:  def.Ptr(),
				}
				if attr != nil {
					d.Subject = attr.Expr.Range().Ptr()
					d.Context = attr.Range.Ptr()
				}
				diags = diags.Append(d)
			}
		}
		out[f.Name] = v
	}
	return out, !diags.HasErrors(), diags
}

// resolvePaths resolves a string, or the strings of a list, set or tuple,
// against dir. Other types and nulls are returned unchanged.
func resolvePaths(dir string, v cty.Value) cty.Value {
	if v.IsNull() {
		return v
	}
	t := v.Type()
	switch {
	case t.Equals(cty.String):
		return cty.StringVal(resolvePath(dir, v.AsString()))
	case t.IsListType() || t.IsSetType() || t.IsTupleType():
		if v.LengthInt() == 0 {
			return v
		}
		var elems []cty.Value
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			elems = append(elems, resolvePaths(dir, e))
		}
		switch {
		case t.IsListType():
			return cty.ListVal(elems)
		case t.IsSetType():
			return cty.SetVal(elems)
		default:
			return cty.TupleVal(elems)
		}
	}
	return v
}

// sentence turns a Go error string (lowercase, no final period by
// convention) into a sentence, the form HCL uses for diagnostic details.
func sentence(s string) string {
	if s == "" {
		return s
	}
	if s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	if c := s[len(s)-1]; c != '.' && c != '!' && c != '?' {
		s += "."
	}
	return s
}
