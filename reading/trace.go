package reading

import (
	"context"
	"sync/atomic"
)

// Trace collects what the reads made under one context did, so that the
// engine can report per location whether upstream answered 304 (an ETag
// hit) without the stages having to report it themselves.
type Trace struct {
	Requests    atomic.Int64
	NotModified atomic.Int64
}

type traceKey struct{}

// WithTrace returns a context whose reads are counted into t.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func traceOf(ctx context.Context) *Trace {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	return t
}
