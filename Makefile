# Tally: the targets people expect. Everything but `make generate`'s front-end
# steps needs only Go; .ci/setup installs the rest on demand.
GO ?= go
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

.PHONY: run test test-postgres generate templ css vendor bench fuzz-smoke tools clean

## run: serve Tally with demo data on ./tally.db
run:
	$(GO) run ./cmd/tally serve --demo

## test: install test tools if missing, then run every test
test: tools
	$(GO) test -count=1 -timeout 25m ./...

## test-postgres: the store's tests again on PostgreSQL (each package starts a throw-away cluster)
test-postgres: tools
	TALLY_TEST_DB=postgres $(GO) test -count=1 $(POSTGRES_PKGS)

# The packages whose tests open a store and run on either.
POSTGRES_PKGS = ./db ./notify ./handlers

tools:
	@bash .ci/setup

## generate: regenerate committed generated files (templ, CSS)
generate: templ vendor css

templ:
	$(GO) tool templ generate -path views >/dev/null

## css: rebuild static/app.css with Tailwind (from npm, pinned in package-lock.json)
css: tools
	npx --no-install tailwindcss -c tailwind.config.js -i static/src/app.css -o static/app.css --minify 2>/dev/null

## vendor: copy htmx from node_modules into static/vendor
vendor: tools
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js

## bench: Go benchmarks of the hot paths
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./billing ./db ./handlers

## fuzz-smoke: run each fuzz target briefly (their seed corpora run in `make test`).
## A count (-fuzztime 20000x), not a duration: Go 1.26's fuzz coordinator can report its own
## -fuzztime deadline as a failure ("context deadline exceeded", no crasher; golang/go#75804,
## fixed in Go 1.27) when a busy machine starves a worker at the boundary.
fuzz-smoke:
	@for pkg in ./billing ./handlers ./handlers/forms; do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; out=$$($(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 20000x $$pkg 2>&1) || { echo "$$out"; exit 1; }; \
	  done; \
	done

clean:
	rm -f tally.db tally.db-wal tally.db-shm
