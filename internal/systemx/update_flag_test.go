package systemx_test

// Importing golden registers the -update flag, so that
// `go test ./... -update` is accepted by every package.
import _ "github.com/catalog-pipeline/pipeline/internal/golden"
