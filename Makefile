# The two set-up commands of the README are `make run` and `make test`.
GO      ?= go
BIN     := bin/pipeline
DB      ?= ./data/catalog.db
CONFIG  ?= ./pipelines

# Packages whose code runs goroutines are tested under the race detector.
RACE_PKGS := ./engine/... ./store/... ./cmd/... ./reading/... ./scripting/... ./internal/systemx/... ./internal/gctune/... ./api/...

.PHONY: all build run run-once test bench microbench vet fmt clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/pipeline

# run serves the example pipelines: it ingests them, prints a summary once
# caught up, then keeps refreshing and reloading edits until Ctrl-C.
run: build
	@mkdir -p $(dir $(DB))
	./$(BIN) serve --config $(CONFIG) --db $(DB)

# run-once does one full pass, prints the summary and exits.
run-once: build
	@mkdir -p $(dir $(DB))
	./$(BIN) run --once --config $(CONFIG) --db $(DB)

# The store's suite runs twice: the second time with its search index
# split into segments by every write (STORE_SEGMENTS, store/segments.go).
test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	STORE_SEGMENTS=1 $(GO) test -count=1 ./store/
	$(GO) test -count=1 -race $(RACE_PKGS)

# bench measures a real server on generated catalogs of 10k and 100k
# entities and prints the table kept in BENCHMARKS.md; microbench runs the
# Go micro-benchmarks of the hot pieces.
bench: build microbench
	./$(BIN) bench --sizes 10000,100000

microbench:
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./builtin/ ./scripting/ ./catalog/
	$(GO) test -run '^$$' -bench 'Commit|Page|Facets|Stitch' -benchtime 20x ./store/
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./engine/
	$(GO) test -run '^$$' -bench . -benchtime 5x ./api/

vet:
	$(GO) vet ./...

fmt:
	gofmt -w .

clean:
	rm -rf bin data
