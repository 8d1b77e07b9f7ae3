# tally — make demo runs the main job on the embedded defaults; make test runs
# everything CI runs.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/tally

.PHONY: all build demo test lint vet fmt-check unit clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tally

## demo: sync the demo estate and compute license usage for the latest day.
demo: build
	@$(BIN) run sync-clusters --log-level warn
	@$(BIN) run license-usage --log-level warn
	@$(BIN) run analytics --log-level error
	@echo
	@echo "Query it: duckdb -c \"SELECT region, compliance, count(*) FROM read_parquet('tally-data/usage/subscription/**/*.parquet', hive_partitioning=true) GROUP BY ALL ORDER BY ALL\""

## test: formatting, vet, and every test with the race detector.
test: fmt-check vet unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

clean:
	rm -rf bin tally-data

## bench: the report writers at 5M and 20M rows: rows per CPU-second and peak RSS
## beside the §10 targets; figures in bench-results.json.
bench:
	$(GO) build -o bin/bench ./internal/bench
	bin/bench -rows 5000000,20000000 -out bench-results.json
