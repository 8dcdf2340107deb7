# tapir: `make demo` runs the main job, `make test` runs every test. Both install what is missing first.
# Every target is idempotent: stamps and file timestamps skip work that is already done.

SHELL := /bin/bash
APT_PACKAGES := libtorch-dev libopenblas0-openmp libtcmalloc-minimal4 python3-torch python3-torchvision g++ make python3 \
                dataset-fashion-mnist openclipart-png chromium redis-server xz-utils sqlite3
TCMALLOC := /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
# The engine matches PyTorch speed only with tcmalloc preloaded (see docs/ENGINE.md).
RUN := LD_PRELOAD=$(TCMALLOC) node
STAMPS := .stamps
NATIVE_SRC := $(wildcard native/*.cc native/*.h) binding.gyp
TS_SRC := $(shell find src test bench -name '*.ts' 2>/dev/null) tsconfig.json

.PHONY: setup test test-fast demo bench bench-engine size clean apt

# Layer-specific set-up steps live in mk/*.mk and add their targets to SETUP_EXTRA.
SETUP_EXTRA :=
-include mk/*.mk

# The apt stamp is named after the package list, so editing the Makefile elsewhere re-runs nothing.
APT_STAMP := $(STAMPS)/apt-$(shell echo $(APT_PACKAGES) | md5sum | cut -c1-8)

setup: $(APT_STAMP) node_modules/.package-lock.json build/Release/tapir_native.node dist/.built $(SETUP_EXTRA)

# Debian packages: installed only when one is missing (apt-get needs root, as on CI and dev machines).
$(APT_STAMP):
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(STAMPS) && touch $@

# npm ci also builds the addon through the package's install script.
node_modules/.package-lock.json: package-lock.json $(APT_STAMP)
	ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
	@touch $@

build/Release/tapir_native.node: $(NATIVE_SRC) | node_modules/.package-lock.json
	npm run build:native
	@touch $@

dist/.built: $(TS_SRC) node_modules/.package-lock.json
	npx tsc -p tsconfig.json
	@touch $@

# One formatter (prettier, .prettierrc.json: print width 120), checked before the tests; `make format` applies it.
FORMAT_GLOBS := "src/**/*.ts" "test/**/*.ts" "bench/**/*.ts"
.PHONY: format format-check
format: node_modules/.package-lock.json
	npx prettier --write --log-level warn $(FORMAT_GLOBS)
format-check: node_modules/.package-lock.json
	@npx prettier --check --log-level warn $(FORMAT_GLOBS) || { echo "some files are not formatted: run 'make format'" >&2; exit 1; }

test: setup format-check
	@files=$$(find dist/test -name '*.test.js' | sort); \
	if [ -z "$$files" ]; then echo "no test files under dist/test" >&2; exit 1; fi; \
	LD_PRELOAD=$(TCMALLOC) node --test --test-concurrency=1 $$files

# The quick loop while editing (< 2 min): every test file except the end-to-end studies (queue included), the zoo/TF.js parity
# checks against real pre-trained weights, the dataset decoders and the headless-browser report.
FAST_SKIP := /study/(resume|smoke|ablation|diagnostics|same-path|report|queue)\.|/graph/(zoo|tfjs)/|/data/sources/|/analysis/cli\.
test-fast: setup format-check
	@files=$$(find dist/test -name '*.test.js' | sort | grep -Ev '$(FAST_SKIP)'); \
	LD_PRELOAD=$(TCMALLOC) node --test --test-concurrency=1 $$files

demo: setup
	bin/tapir doctor
	bin/tapir demo

# Every benchmark (bench/*.ts), each an npm script too (`npm run bench:<name>`), each ending with its JSON line.
BENCHES := engine score hessian data eval reconstruct queue threads memory-format
.PHONY: bench $(BENCHES:%=bench-%)
bench: $(BENCHES:%=bench-%)

bench-engine bench-score bench-hessian bench-data bench-reconstruct bench-queue bench-threads bench-memory-format: bench-%: setup
	$(RUN) dist/bench/$*.js

# The zero-shot feature pass (default runtime) against onnxruntime-node by hand (docs/BENCH.md).
bench-eval: setup
	$(RUN) --expose-gc dist/bench/eval.js

size:
	@node scripts/size.mjs

# CUDA build of the addon (docs/ENGINE.md, Devices): g++ against python3's torch, when that torch sees a GPU. Neither
# setup nor test depends on it; a later `npm ci` (changed package-lock) rebuilds the CPU addon over it: rerun it then.
NODE_INCLUDE := $(abspath $(dir $(shell command -v node))../include/node)
GPU_INCLUDE := .gpu/include
.PHONY: setup-cuda cuda-torch gpu-pack
setup-cuda: cuda-torch node_modules/.package-lock.json dist/.built $(GPU_INCLUDE)/napi.h
	scripts/gpu/build-addon.sh $(GPU_INCLUDE)

# Fails first, naming what is missing: a torch for python3, a CUDA build of it, or a GPU it can use.
cuda-torch:
	@python3 -c 'import torch' 2>/dev/null || { echo "setup-cuda: python3 ($$(command -v python3)) cannot import torch: install a CUDA build of PyTorch for it (pip install torch)" >&2; exit 1; }
	@python3 -c 'import sys, torch; v = torch.version.cuda; sys.exit(None if torch.cuda.is_available() else f"setup-cuda: torch {torch.__version__} in python3 " + ("is a CPU-only build: install a CUDA build of PyTorch (pip install torch)" if v is None else f"(CUDA {v}) finds no GPU: check nvidia-smi and the NVIDIA driver"))'

# N-API and node-addon-api headers in one folder, for g++ builds of the addon without node-gyp (setup-cuda, GPU machines).
$(GPU_INCLUDE)/napi.h: node_modules/.package-lock.json
	@mkdir -p $(GPU_INCLUDE)
	cp $(NODE_INCLUDE)/{node_api.h,node_api_types.h,js_native_api.h,js_native_api_types.h} \
	  node_modules/node-addon-api/{napi.h,napi-inl.h,napi-inl.deprecated.h} $(GPU_INCLUDE)/

# What travels to a lent GPU machine, which has no Node (scripts/gpu/*.sh): the node binary, the headers, dist/.
gpu-pack: .gpu/node.xz $(GPU_INCLUDE)/napi.h dist/.built
.gpu/node.xz: $(shell command -v node)
	@mkdir -p .gpu
	xz -T2 -9 -c $< > $@.tmp && mv $@.tmp $@

# The studies (studies/*.yaml, each <= 60 min on 2 cores) and docs/RESULTS.md generated from their databases
# (results/<name>.sqlite, the working copies, not committed). Studies resume: re-running skips finished cells.
# `make study-<name>` runs one. `make results-save` keeps the databases behind the document in git
# (docs/results/db/<name>.sqlite.xz); `make results-doc` unpacks them where results/ lacks one, so a clean clone
# regenerates docs/RESULTS.md without rerunning anything.
RESULT_STUDIES := paper-imagenet-a paper-imagenet-b paper-imagenet-c paper-imagenet-nsfwjs explanation-imagenet paper-cifar paper-clipart ablation-bn ablation-allocation ablation-calibration controls explanation target reconstruct reconstruct-allocation reconstruct-confirm reconstruct-rounds reconstruct-calibration reconstruct-error reconstruct-error-draw reconstruct-imagenet reconstruct-imagenet-large reconstruct-imagenet-large-draw
.PHONY: results results-doc
results: setup
	@mkdir -p results
	@set -e; for s in $(RESULT_STUDIES); do echo "== study $$s"; bin/tapir study studies/$$s.yaml --db results/$$s.sqlite; done
	$(MAKE) results-doc

# Only regenerates docs/RESULTS.md and docs/results/ from whatever the databases hold (missing ones: "not run yet").
results-doc: setup results-unpack
	bin/tapir results --out docs/RESULTS.md --plots docs/results --db-dir results $(RESULT_STUDIES:%=studies/%.yaml)

RESULT_DBS := docs/results/db
.PHONY: results-unpack results-save
results-unpack: $(APT_STAMP)
	@mkdir -p results
	@for s in $(RESULT_STUDIES); do \
	  if [ ! -f results/$$s.sqlite ] && [ -f $(RESULT_DBS)/$$s.sqlite.xz ]; then \
	    echo "unpacking $(RESULT_DBS)/$$s.sqlite.xz"; xz -dc $(RESULT_DBS)/$$s.sqlite.xz > results/$$s.sqlite.tmp && mv results/$$s.sqlite.tmp results/$$s.sqlite; \
	  fi; done

# A consistent copy of each study database (VACUUM INTO: no WAL, no half-written page), compressed; atomic rename.
results-save: $(APT_STAMP)
	@mkdir -p $(RESULT_DBS)
	@for s in $(RESULT_STUDIES); do \
	  if [ -f results/$$s.sqlite ]; then \
	    rm -f results/$$s.save.sqlite && sqlite3 results/$$s.sqlite "VACUUM INTO 'results/$$s.save.sqlite'" && \
	    xz -T2 -9 -c results/$$s.save.sqlite > $(RESULT_DBS)/$$s.sqlite.xz.tmp && mv $(RESULT_DBS)/$$s.sqlite.xz.tmp $(RESULT_DBS)/$$s.sqlite.xz && \
	    rm -f results/$$s.save.sqlite && echo "saved $(RESULT_DBS)/$$s.sqlite.xz ($$(du -k $(RESULT_DBS)/$$s.sqlite.xz | cut -f1) KiB)"; \
	  fi; done

# A static pattern over the studies/ files, so that it never claims a source file such as test/helpers/study-config.ts.
STUDY_TARGETS := $(patsubst studies/%.yaml,study-%,$(wildcard studies/*.yaml))
.PHONY: $(STUDY_TARGETS)
$(STUDY_TARGETS): study-%: setup
	@mkdir -p results
	bin/tapir study studies/$*.yaml --db results/$*.sqlite

clean:
	rm -rf build dist $(STAMPS)
