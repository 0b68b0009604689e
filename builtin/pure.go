package builtin

import "github.com/catalog-pipeline/pipeline/engine"

// Every builtin stage is engine.Pure: what its hooks produce depends only
// on the entity, the location, its settings, its cache and what it reads
// through the pipeline's reader with the hook's context. The engine may
// therefore skip a run whose inputs are unchanged (engine/memo.go).
var (
	_ engine.Pure = (*fileStage)(nil)
	_ engine.Pure = (*urlStage)(nil)
	_ engine.Pure = (*placeholders)(nil)
	_ engine.Pure = (*annotateLocation)(nil)
	_ engine.Pure = (*builtinKinds)(nil)
)

// Pure implements engine.Pure.
func (*fileStage) Pure() bool { return true }

// Pure implements engine.Pure: its reads are HTTP requests, which the
// reader records as volatile, so a url location is always read again.
func (*urlStage) Pure() bool { return true }

// Pure implements engine.Pure.
func (*placeholders) Pure() bool { return true }

// Pure implements engine.Pure.
func (*annotateLocation) Pure() bool { return true }

// Pure implements engine.Pure.
func (*builtinKinds) Pure() bool { return true }
