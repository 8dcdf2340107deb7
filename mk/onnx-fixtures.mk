# ONNX family fixtures (issue: torchvision classifier families): one small, seeded instance of each family, exported
# by scripts/onnx_families.py with Debian's python3-torch / python3-torchvision into .cache/onnx-families (gitignored),
# with torch's logits. Rebuilt when missing or older than the script. Only test/graph/onnx-families.test.ts needs it:
# that test runs `make onnx-families` itself, so `make setup` and every other test never wait for torch.
# Fragments are included before the Makefile's first rule: keep `make` with no target meaning what it did.
ONNX_FAMILIES_SAVED_GOAL := $(.DEFAULT_GOAL)

ONNX_FAMILIES_DIR := .cache/onnx-families
ONNX_FAMILIES_PYTHON := /usr/bin/python3

.PHONY: onnx-families test-onnx-families
onnx-families: $(ONNX_FAMILIES_DIR)/manifest.json

# The script writes a temp folder beside the target and renames it over: an interrupted run leaves the old fixtures.
$(ONNX_FAMILIES_DIR)/manifest.json: scripts/onnx_families.py
	@$(ONNX_FAMILIES_PYTHON) -c 'import torch, torchvision' 2>/dev/null || { echo "onnx-families: $(ONNX_FAMILIES_PYTHON) cannot import torch/torchvision: apt-get install python3-torch python3-torchvision" >&2; exit 1; }
	$(ONNX_FAMILIES_PYTHON) scripts/onnx_families.py $(ONNX_FAMILIES_DIR)

# The family test alone (after `make setup`); it also regenerates the table in docs/GRAPH.md.
test-onnx-families: onnx-families
	$(RUN) --test dist/test/graph/onnx-families.test.js

.DEFAULT_GOAL := $(ONNX_FAMILIES_SAVED_GOAL)
