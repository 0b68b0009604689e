package builtin

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"

	"github.com/catalog-pipeline/pipeline/engine"
	"github.com/catalog-pipeline/pipeline/reading"
)

// FileSpec registers the `file` stage, Backstage's FileReaderProcessor: it
// reads locations of type "file", whose target is an absolute path or a
// doublestar glob ("/repo/**/catalog-info.yaml"). It has no settings: what it
// may read is decided by the pipeline's allowed folders, not by the stage.
var FileSpec = engine.StageSpec{
	Name:    "file",
	Summary: "Reads entities from YAML or JSON files of `file` locations (absolute paths or globs).",
	New: func(b engine.Build) (engine.Stage, error) {
		if b.Reader == nil {
			return nil, errors.New("the file stage needs a reader")
		}
		return &fileStage{name: stageName(b, "file"), reader: b.Reader, log: logger(b)}, nil
	},
}

type fileStage struct {
	name   string
	reader *reading.Reader
	log    *slog.Logger
}

func (s *fileStage) Name() string { return s.name }

// ReadLocation reads every file the target matches. A bad document or an
// unreadable file is reported as an error at that file's location while the
// rest still load, so one broken file in a glob does not hide a whole
// catalog. Each matched file gets a refresh key "file:<path>".
func (s *fileStage) ReadLocation(ctx context.Context, loc engine.Location, optional bool, emit engine.Emit, _ engine.Cache) (bool, error) {
	if loc.Type != "file" {
		return false, nil
	}
	target := loc.Target
	if !filepath.IsAbs(target) {
		return true, engine.InputError("file location target %s is not an absolute path", target)
	}
	matches, err := s.reader.Glob(ctx, target)
	if err != nil {
		return true, withCause(engine.GeneralError("file %s: %v", target, unprefix(err, "glob "+target+": ")), err)
	}
	if len(matches) == 0 {
		if optional {
			return true, nil
		}
		return true, engine.NotFoundError("file %s does not exist", target)
	}
	for _, path := range matches {
		if err := ctx.Err(); err != nil {
			return true, withCause(engine.GeneralError("file %s: %v", target, err), err)
		}
		at := engine.Location{Type: "file", Target: path}
		emit(engine.RefreshResult{Key: "file:" + path})
		data, err := s.reader.ReadFile(ctx, path)
		if err != nil {
			var pe *engine.ProcessingError
			if errors.Is(err, reading.ErrNotFound) {
				// Deleted between the glob and the read.
				pe = engine.NotFoundError("%v", err)
			} else {
				pe = engine.GeneralError("%v", err)
			}
			emit(engine.ErrorResult{Location: at, Err: withCause(pe, err)})
			continue
		}
		entities, errs := ParseEntities(data, path)
		s.log.Debug("read file", "path", path, "entities", len(entities), "errors", len(errs))
		for _, pe := range entities {
			emit(engine.EntityResult{Location: at, Entity: pe.Entity})
		}
		for _, perr := range errs {
			emit(engine.ErrorResult{Location: at, Err: withCause(engine.InputError("%v", perr), perr)})
		}
	}
	return true, nil
}

// withCause keeps the underlying error reachable through errors.Is/As.
func withCause(pe *engine.ProcessingError, cause error) *engine.ProcessingError {
	pe.Cause = cause
	return pe
}

// unprefix drops a prefix the caller's own message already carries.
func unprefix(err error, prefix string) string {
	msg := err.Error()
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return msg
}

// stageName is the name the stage was declared with, or the spec name when
// a caller (a test, a default pipeline) left it empty.
func stageName(b engine.Build, def string) string {
	if b.Stage != "" {
		return b.Stage
	}
	return def
}

func logger(b engine.Build) *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.Default()
}
