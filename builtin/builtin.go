// Package builtin holds the stages written in Go, the counterparts of
// Backstage's default catalog processors:
//
//   - file (FileSpec): reads `file` locations, an absolute path or a
//     doublestar glob, and emits the entities of each YAML or JSON file.
//   - url (URLSpec): reads `url` locations over http(s), with ETag caching
//     so that unchanged files cost a 304 and no parsing.
//   - placeholders (PlaceholdersSpec): resolves $text, $json and $yaml
//     placeholders relative to the entity's own location.
//   - annotate-location (AnnotateLocationSpec): adds the view/edit/source
//     location annotations derived from where an entity was read.
//   - builtin-kinds (BuiltinKindsSpec): validates Backstage's builtin kinds
//     and emits the relations their spec fields imply.
//
// Every stage reads through the pipeline's *reading.Reader, so the folders
// and hosts a pipeline allows bound what any stage can touch. The shared
// document parser, ParseEntities, is exported for stages that read catalog
// files themselves.
package builtin

import "github.com/catalog-pipeline/pipeline/engine"

// Specs returns the builtin stage specs, for the configuration loader to
// register. A new builtin stage is one file plus one entry here.
func Specs() []engine.StageSpec {
	return []engine.StageSpec{
		FileSpec,
		URLSpec,
		PlaceholdersSpec,
		AnnotateLocationSpec,
		BuiltinKindsSpec,
	}
}
