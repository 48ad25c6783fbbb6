# Two commands do everything on a fresh machine:
#   make run    set up, then serve the app (ViT-B-32 with OpenAI weights, downloaded on first run)
#   make test   set up (with test tools), then run the whole test suite
PY := .venv/bin/python
ARGS ?=

.PHONY: run test setup setup-dev bench gpu-check clean

run: setup
	$(PY) app.py $(ARGS)

test: setup-dev
	HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False MPLBACKEND=Agg $(PY) -m pytest $(ARGS)

setup:
	scripts/setup.sh

setup-dev:
	scripts/setup.sh --dev

bench: setup
	HF_HUB_OFFLINE=1 $(PY) -m convis bench --pretrained none --json $(ARGS)

gpu-check: setup
	scripts/gpu_check.sh

clean:
	rm -rf .venv .pytest_cache test-artifacts
