package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// evalContext returns the context expressions of one file are evaluated in.
// Each file gets its own because file() resolves against the file's folder.
// There are no variables: only the functions below.
func evalContext(dir string, lookupEnv func(string) (string, bool)) *hcl.EvalContext {
	return &hcl.EvalContext{
		Functions: map[string]function.Function{
			"env":  envFunc(lookupEnv),
			"file": fileFunc(dir),
		},
	}
}

// envFunc is env("NAME") or env("NAME", "fallback"). An unset variable
// without a fallback is an error rather than "" so that a forgotten secret
// fails at load time, at the call, instead of as a confusing upstream 401.
// A variable set to "" counts as set.
func envFunc(lookupEnv func(string) (string, bool)) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the value of an environment variable, or the fallback when it is unset.",
		Params: []function.Parameter{
			{Name: "name", Type: cty.String, Description: "the variable's name"},
		},
		VarParam: &function.Parameter{
			Name: "fallback", Type: cty.String,
			Description: "the value to use when the variable is unset",
		},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if len(args) > 2 {
				return cty.NilVal, function.NewArgErrorf(2, "env takes a name and at most one fallback")
			}
			name := args[0].AsString()
			if v, ok := lookupEnv(name); ok {
				if !utf8.ValidString(v) {
					return cty.NilVal, fmt.Errorf("environment variable %q is not valid UTF-8", name)
				}
				return cty.StringVal(v), nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return cty.NilVal, fmt.Errorf("environment variable %q is not set; set it, or give a fallback: env(%q, \"...\")", name, name)
		},
	})
}

// fileFunc is file("path"): the contents of a text file, a relative path
// being resolved against dir (the folder of the HCL file that calls it, so
// that a configuration folder can be moved as a whole).
func fileFunc(dir string) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the contents of a UTF-8 text file; a relative path is resolved against the folder of the HCL file.",
		Params: []function.Parameter{
			{Name: "path", Type: cty.String, Description: "the file's path"},
		},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := resolvePath(dir, args[0].AsString())
			b, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				return cty.NilVal, fmt.Errorf("no such file %s", p)
			}
			if err != nil {
				return cty.NilVal, err
			}
			if !utf8.Valid(b) {
				return cty.NilVal, fmt.Errorf("file %s is not UTF-8 text", p)
			}
			return cty.StringVal(string(b)), nil
		},
	})
}

// resolvePath makes p absolute against dir and cleans it. "" stays "" so
// that an empty setting does not silently become the folder itself. Glob
// metacharacters are kept as they are.
func resolvePath(dir, p string) string {
	if p == "" {
		return ""
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return filepath.Clean(p)
}
