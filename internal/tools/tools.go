//go:build tools

// Package tools pins modules that later issues use so go.mod stays stable while they land.
package tools

import (
	_ "github.com/bmatcuk/doublestar/v4"
	_ "github.com/dop251/goja"
	_ "github.com/google/uuid"
	_ "github.com/gorilla/mux"
	_ "github.com/hashicorp/hcl/v2"
	_ "github.com/hashicorp/hcl/v2/hcldec"
	_ "github.com/hashicorp/hcl/v2/hclparse"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "github.com/zclconf/go-cty/cty"
	_ "github.com/zclconf/go-cty/cty/function"
	_ "go.etcd.io/bbolt"
	_ "go.yaml.in/yaml/v3"
)
