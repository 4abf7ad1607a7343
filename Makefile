# fxws: the two commands that matter are `make run` and `make test`.
GO      ?= go
PKGS    ?= ./...
BENCH   ?= .
TIMEOUT ?= 20m

.PHONY: run test bench lint cover fuzz interop compare tidy conformance

## run: the demo server on the embedded (in-process) broker; no Redis needed
run:
	$(GO) run ./examples/demo

## test: every test with the race detector
test:
	$(GO) test -race -count=1 -timeout $(TIMEOUT) $(PKGS)

## bench: benchmarks (figures only, no assertions)
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(PKGS)

## lint: gofmt check and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@# The raw socket path is Linux but for 386 (socketcall); elsewhere
	@# (linux/386, macOS, Windows) the portable one must still build.
	GOARCH=386 $(GO) vet $(PKGS)
	GOOS=darwin $(GO) build $(PKGS)
	GOOS=windows $(GO) build $(PKGS)

## cover: coverage profile and per-function summary
cover:
	$(GO) test -count=1 -coverprofile=cover.out $(PKGS)
	$(GO) tool cover -func=cover.out | tail -n 1

## fuzz: every fuzz target for FUZZTIME each (default 15s; CI uses 10s): inbound messages, join/leave payloads and broker envelopes against a served helper, compressed message bodies, envelope decoding, room names and the JSON depth scanner
FUZZTIME ?= 15s
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## interop: the original (Ignis on Bun) and our demo on one Redis; delivery both ways, PASS/FAIL per case (not run in CI)
interop:
	bash cmd/fxws-interop/run.sh

## compare: load matrix against the original (Bun) and our demo; writes docs/performance.md (REPS, SCALE, CASES: see the script)
compare:
	./scripts/compare.sh

## conformance: black-box suite against the original (Ignis on Bun) and our demo, same settings, one throwaway Redis; summary per implementation (not run in CI; `make test` runs it against our demo alone)
conformance:
	bash conformance/run.sh
