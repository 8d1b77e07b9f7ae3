# tally — `make demo` runs the main jobs on the embedded defaults; `make test` runs
# everything CI runs, building (once) and starting the test servers it needs.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/tally

# Test servers are built once and cached beside other Go tools.
TOOLS_BIN       := $(shell $(GO) env GOPATH)/bin
MAILPIT_VERSION := v1.27.11
MAILPIT         := $(TOOLS_BIN)/mailpit-$(MAILPIT_VERSION)
MINIO_VERSION   := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO           := $(TOOLS_BIN)/minio-$(MINIO_VERSION)
TOXIPROXY_VERSION := v2.12.0
TOXIPROXY       := $(TOOLS_BIN)/toxiproxy-server-$(TOXIPROXY_VERSION)

.PHONY: all build demo demo-files demo-subscriptions test fmt-check vet unit servers browser spreadsheet fuzz bench bench-chain bench-cdr clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tally

## demo: sync the demo estate, compute license usage and 8 weeks of analytics
## (so the console's trend charts have points), then produce every report
## template (emails land in the outbox, with unsubscribe links to the local console).
# The console its emails link to: TALLY_SERVE_PUBLIC_URL when set, else bin/tally serve's default.
DEMO_CONSOLE := $(or $(TALLY_SERVE_PUBLIC_URL),http://localhost:8080)
demo: export TALLY_SERVE_PUBLIC_URL = $(DEMO_CONSOLE)
demo: build demo-subscriptions
	@$(BIN) run sync-clusters --log-level warn
	@$(BIN) run license-usage --log-level warn
	@# 8 weeks of analytics, oldest first, so each week's trends read every week
	@# before it: the 7 before the latest (latest = the Sunday the latest ended
	@# week started), then the latest, which prints its KPIs
	@latest=$$(date -u -d "$$(date -u +%F) - $$(( $$(date -u +%w) + 7 )) days" +%F); \
	  $(BIN) backfill analytics --from $$(date -u -d "$$latest - 49 days" +%F) --to $$(date -u -d "$$latest - 7 days" +%F) --parallel 1 --log-level error >/dev/null
	@$(BIN) run analytics --log-level error
	@$(BIN) run reports-daily --log-level warn
	@$(BIN) run reports-weekly --log-level error
	@echo
	@echo "Emails: $$(find $${TALLY_STORAGE_PATH:-tally-data}/outbox -name '*.eml' | wc -l) .eml files in $${TALLY_STORAGE_PATH:-tally-data}/outbox/"
	@echo "Query it: duckdb -c \"SELECT region, compliance, count(*) FROM read_parquet('tally-data/usage/subscription/**/*.parquet', hive_partitioning=true) GROUP BY ALL ORDER BY ALL\""
	@echo "Console: $(BIN) serve, then open $(DEMO_CONSOLE)/ (runs, analytics with charts, reports)"

## demo-files: export a demo day as a landing zone (./landing), then run the daily
## chain on it with the files source into ./tally-data-files.
DEMO_DAY ?= $(shell date -u -d yesterday +%F)
demo-files: build
	@$(BIN) source export --period $(DEMO_DAY) --out landing --log-level warn
	@TALLY_STORAGE_PATH=tally-data-files TALLY_SOURCE_TYPE=files TALLY_SOURCE_FILES_PATH=landing $(BIN) run license-usage --period $(DEMO_DAY) --log-level warn
	@echo
	@echo "The landing zone: landing/ (its manifest: landing/_ready/day=$(DEMO_DAY).json)"
	@echo "tally's outputs from it: tally-data-files/ (byte-identical to a demo run of the same day)"

# One demo subscription per template: Customer Subscriptions weekly, the others daily.
DEMO_PARTNER := P093374
demo-subscriptions: build
	@$(BIN) subscriptions add --if-missing --id demo-flex --partner $(DEMO_PARTNER) --template flex-license-usage --cadence daily --to licensing@example.com >/dev/null
	@$(BIN) subscriptions add --if-missing --id demo-di --partner $(DEMO_PARTNER) --template dedicated-instance-usage-by-cluster --cadence daily --to di-ops@example.com >/dev/null
	@$(BIN) subscriptions add --if-missing --id demo-customer-subscriptions --partner $(DEMO_PARTNER) --template customer-subscriptions --cadence weekly --to account-managers@example.com >/dev/null
	@$(BIN) subscriptions add --if-missing --id demo-calling --partner $(DEMO_PARTNER) --template calling-usage-detail --cadence daily --to voice-ops@example.com >/dev/null
	@$(BIN) subscriptions add --if-missing --id demo-devices --partner $(DEMO_PARTNER) --template devices --cadence daily --to it@example.com >/dev/null
	@$(BIN) subscriptions add --if-missing --id demo-numbers --partner $(DEMO_PARTNER) --template phone-numbers --cadence daily --to it@example.com >/dev/null

## test: formatting, vet, and every test with the race detector, against a real
## Mailpit and a real MinIO started for the run on free 127.0.0.1 ports.
test: fmt-check vet unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit: servers browser spreadsheet
	$(GO) run ./internal/testservers/with-servers -mailpit $(MAILPIT) -minio $(MINIO) -toxiproxy $(TOXIPROXY) -- $(GO) test -race -count=1 -timeout 20m ./...

servers: $(MAILPIT) $(MINIO) $(TOXIPROXY)

# The console's browser tests drive Debian's chromium-headless-shell (chromedp).
BROWSER := chromium-headless-shell
browser:
	@command -v $(BROWSER) >/dev/null || { echo "installing $(BROWSER) (the Debian package, once)"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && $$sudo apt-get install -y -qq --no-install-recommends $(BROWSER) >/dev/null; }

# The workbook tests open every XLSX with LibreOffice (Debian's libreoffice-calc-nogui).
spreadsheet:
	@command -v soffice >/dev/null || { echo "installing libreoffice-calc-nogui (the Debian package, once)"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && $$sudo apt-get install -y -qq --no-install-recommends libreoffice-calc-nogui >/dev/null; }

$(MAILPIT):
	@echo "building Mailpit $(MAILPIT_VERSION) into $(TOOLS_BIN) (once; reused after)"
	cd tools && $(GO) build -o $(MAILPIT) github.com/axllent/mailpit

$(MINIO):
	@echo "building MinIO into $(TOOLS_BIN) (once, a few minutes; reused after)"
	rm -rf $(TOOLS_BIN)/.minio-build
	GOBIN=$(TOOLS_BIN)/.minio-build $(GO) install github.com/minio/minio@$(MINIO_VERSION)
	mv $(TOOLS_BIN)/.minio-build/minio $(MINIO)
	rm -rf $(TOOLS_BIN)/.minio-build

$(TOXIPROXY):
	@echo "building toxiproxy $(TOXIPROXY_VERSION) into $(TOOLS_BIN) (once; reused after)"
	rm -rf $(TOOLS_BIN)/.toxiproxy-build
	GOBIN=$(TOOLS_BIN)/.toxiproxy-build $(GO) install github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION)
	mv $(TOOLS_BIN)/.toxiproxy-build/server $(TOXIPROXY)
	rm -rf $(TOOLS_BIN)/.toxiproxy-build

## fuzz: run every fuzz target for FUZZTIME each (their seed corpora also run in
## make test). A failing input is saved under the package's testdata/fuzz/.
FUZZTIME ?= 30s
FUZZ_TARGETS := ./periods:FuzzPeriodIDsParseToThemselvesOrAnErrorNeverAPanic \
	./subscriptions:FuzzSubscriptionFieldsNeverReachAHeaderOrAKeyUnchecked \
	./report:FuzzCSVRoundTripsThroughEncodingCSVAndNeverLeavesAFormulaUnneutralised \
	./cmd/tally:FuzzConfigYAMLAndEnvironmentDecodeToAConfigOrAUsageError \
	./source/files:FuzzLandingFilesParseToRowsRejectionsOrAnErrorNeverAPanic \
	./source/webex:FuzzOrganizationJSONMapsToACustomerOrAnErrorNeverAPanic
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME); \
	done

## bench: the report writers at 5M and 20M rows (rows per CPU-second and peak
## RSS beside the §10 targets), the XLSX writer at 1M rows, the console's
## runs page over 6 jobs × 90 periods (target < 100 ms), and the files source's
## call-record reader on a day of 50K and 5M CUCM CDRs with their CMRs (the
## full CDR/CMR field lists; target 250K records per CPU-second, flat memory),
## a day of Webex CDR webhook deliveries for 100 and 1,000 organisations posted
## to tally serve --receive-only and synced (payloads per second; sync peak RSS
## ≤ 256 MiB and within 15% from 100 to 1,000);
## figures in bench-results.json. The DuckDB comparison is its own Go module
## (bench/duckdb, cgo): tally itself stays pure Go and make test needs no cgo.
## It writes the same 2M report rows through both, computes license-usage of a
## 10K-customer demo day with tally and with DuckDB SQL (checking both give the
## same four tables), and turns the 5M call records into legs. About 25 minutes.
CDR_DAYS := bin/cdr-days
bench: build
	$(GO) build -o bin/bench ./internal/bench
	bin/bench -rows 5000000,20000000 -xlsx 1000000 -console 50 -out bench-results.json
	bin/bench -cdr 50000,5000000 -runs 1 -cdr-dir $(CDR_DAYS) -out bench-results.json
	bin/bench -webhook 100,1000 -tally $(BIN) -out bench-results.json
	cd bench/duckdb && CGO_ENABLED=1 $(GO) build -o ../../bin/bench-duckdb .
	bin/bench-duckdb -rows 2000000 -usage 10000 -cdr $(CDR_DAYS)/5000000 -templates 1000000 -tally $(BIN) -out bench-results.json
	rm -rf $(CDR_DAYS)

## bench-chain: the daily chain (sync → license-usage → reports) at 1K, 10K and
## 100K demo customers, each job in its own process (CPU, peak RSS against the
## goals), the week's analytics at 10K and 100K (the week's other days are
## backfilled first, unmeasured), reports-monthly on a month made of the chain
## day's files (hard links), and a backfill with --parallel 1 and 2 (3 pairs);
## figures in bench-results.json. About 21 minutes on 2 cores.
bench-chain: build
	$(GO) build -o bin/bench ./internal/bench
	bin/bench -chain 1000,10000,100000 -tally $(BIN) -out bench-results.json

## bench-cdr: make bench's call-record part alone (the files source reading a
## day of 50K and 5M real-width CUCM CDRs with their CMRs, and DuckDB turning
## the 5M into legs); figures in bench-cdr-results.json. About 6 minutes.
bench-cdr:
	$(GO) build -o bin/bench ./internal/bench
	bin/bench -cdr 50000,5000000 -runs 1 -cdr-dir $(CDR_DAYS) -out bench-cdr-results.json
	cd bench/duckdb && CGO_ENABLED=1 $(GO) build -o ../../bin/bench-duckdb .
	bin/bench-duckdb -rows 0 -cdr $(CDR_DAYS)/5000000 -runs 1 -out bench-cdr-results.json
	rm -rf $(CDR_DAYS)

clean:
	rm -rf bin tally-data tally-data-files landing test-artefacts
