// Package api serves the catalog over HTTP: Backstage's catalog REST API
// under /api/catalog (same paths, parameters, shapes, defaults and status
// codes as Backstage's catalog-backend, so @backstage/catalog-client works
// against it unchanged) plus /healthz and /readyz.
//
// The engine's own view is under /api/pipeline: GET /pipelines (the
// pipelines with their ordered stages, builtin or script), GET /locations
// (per-location status: last read, ETag hit or miss, last error, entities
// emitted, reads and failures), GET /errors (processing errors across the
// catalog, paged with limit and after) and POST /reload (mutating: the
// token rule applies; 400 with the configuration diagnostics). /metrics
// serves Prometheus metrics from a registry of its own (see the Metric*
// names). The OpenAPI 3.0 document of the whole API is api/openapi.yaml,
// embedded and served at /api/openapi.yaml and /api/openapi.json; a test
// keeps it and the router in step, and test/catalog-client runs Backstage's
// own client against a live server.
//
// Queries are answered from the store's indexes through the Catalog
// interface; locations, refresh, deletion and validation go through the
// Engine interface. Errors are written in Backstage's shape:
//
//	{"error":{"name":"NotFoundError","message":"..."},
//	 "request":{"method":"GET","url":"/api/catalog/..."},
//	 "response":{"statusCode":404}}
//
// with Backstage's status mapping (InputError 400, AuthenticationError 401,
// NotAllowedError 403, NotFoundError 404, ConflictError 409,
// NotImplementedError 501, ServiceUnavailableError 503, anything else 500).
//
// Choices where Backstage leaves room, and deviations:
//
//   - Bodies over Options.MaxBody answer 413 PayloadTooLargeError, as
//     Backstage's body parser does; malformed JSON, a body that is not an
//     object and a non-JSON Content-Type answer 400 InputError. A missing
//     Content-Type is accepted.
//   - GET /entities applies only the first `order` field in the store
//     (ties break by ref); entities lacking it come last. Its Link header
//     carries the full path (/api/catalog/entities?...), where Backstage
//     writes the router-relative one.
//   - by-query counts totalItems on the first page only (the store counts
//     the same walk: filter, full-text term and order field) and carries it
//     in the cursors; with totalItems=exclude it answers 0 throughout.
//   - Cursors are base64 JSON much like Backstage's (filter or query,
//     orderFields, orderFieldValues [value, ref] or [ref],
//     fullTextFilter, isPrevious, firstSortFieldValues, totalItems); the
//     position is the ref where Backstage uses its entity id.
//   - DELETE /entities/by-uid/{uid} answers 204 for an unknown uid, like
//     Backstage.
//   - POST /locations accepts `presence` and ignores it (registered
//     locations are required).
//   - PUT /locations/{id} answers 501 NotImplementedError, and POST
//     /analyze-location 501 NotImplementedError.
//   - Messages Backstage clients may match on keep Backstage's wording
//     ("No entity named '…' found, with kind '…' in namespace '…'", "This
//     operation not allowed in readonly mode", "Invalid query: …").
package api
