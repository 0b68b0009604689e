# The two set-up commands of the README are `make run` and `make test`.
GO      ?= go
BIN     := bin/pipeline
DB      ?= ./data/catalog.db
CONFIG  ?= ./pipelines

# Packages whose code runs goroutines are tested under the race detector.
RACE_PKGS := ./engine/... ./store/... ./cmd/... ./reading/... ./scripting/... ./internal/systemx/...

.PHONY: all build run run-once test bench vet fmt clean

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

test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race $(RACE_PKGS)

vet:
	$(GO) vet ./...

fmt:
	gofmt -w .

clean:
	rm -rf bin data
