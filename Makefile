# ec2batch: `make help` lists the targets. The two that matter: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins its own fork of python-hcl2, so it lives in its own virtualenv.
CHECKOV := .cache/checkov-venv/bin/checkov
JOB ?= daily-report
# LOCAL=1 points the CLI targets at the local stack (`ec2batch local env`); otherwise your AWS environment.
LOCAL ?=
LOCAL_ENV = $(if $(LOCAL),eval "$$($(BIN)/ec2batch local env)" &&,)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv with ec2batch and its dev tools

# ---------------------------------------------------------------- the two commands
.PHONY: demo
demo: $(STAMP) ## Bring up the local stack, schedule the example job, watch one run end to end
	$(BIN)/python -m ec2batch.local.demo

.PHONY: test
test: test-unit test-terraform test-browser test-stack ## Every test: unit (in-process moto), real Terraform on the provider double, the report in Chromium, the local stack suite

# ---------------------------------------------------------------- tests and checks
.PHONY: test-unit
test-unit: $(STAMP) $(CHECKOV) ## Unit tests on in-process moto, and the static Terraform checks
	$(BIN)/pytest -q -n 2 tests/unit

$(CHECKOV):
	$(PYTHON) -m venv .cache/checkov-venv
	.cache/checkov-venv/bin/pip install --quiet checkov

.PHONY: checkov
checkov: $(CHECKOV) ## Install checkov (own virtualenv) and scan terraform/
	$(CHECKOV) -d terraform --framework terraform --skip-download --quiet --compact

.PHONY: tf-check
tf-check: $(CHECKOV) ## terraform fmt -check where a binary exists (TF_VALIDATE=1: init + validate too), checkov
	@if command -v terraform >/dev/null; then terraform fmt -check -recursive terraform; \
	  else echo "no terraform binary: fmt and validate skipped (the static suite still runs)"; fi
	@if [ -n "$$TF_VALIDATE" ]; then cd terraform/examples/daily-job && terraform init -backend=false && terraform validate; fi
	$(CHECKOV) -d terraform --framework terraform --skip-download --quiet --compact

.PHONY: test-stack
test-stack: $(STAMP) ## The local stack suite: real dockerd, registry, moto_server, Packer image (root)
	$(BIN)/pytest -q tests/stack

.PHONY: test-browser
test-browser: $(STAMP) ## The HTML report in headless Chromium (installs Debian's chromium if missing); screenshot in .cache/artifacts
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the browser test"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }
	$(BIN)/pytest -q tests/browser

.PHONY: docs-screenshot
docs-screenshot: test-browser ## Refresh docs/images/report.png from the browser test's screenshot (a test run leaves the checkout as it was)
	mkdir -p docs/images && cp .cache/artifacts/report.png docs/images/report.png

.PHONY: test-terraform
test-terraform: $(STAMP) ## Real Terraform on the hashicorp/aws double: init/validate/plan/apply/destroy of examples/daily-job on moto
	$(BIN)/pytest -q tests/terraform

.PHONY: tf-schema
tf-schema: $(STAMP) ## Regenerate the provider double's schema from cdktn-provider-aws (downloads its 71 MB wheel into .cache)
	$(BIN)/pip download --quiet --no-deps cdktn-provider-aws==25.8.1 -d .cache/cdktn
	$(BIN)/python -m tests.terraform.provider.schema_gen .cache/cdktn/cdktn_provider_aws-25.8.1-py3-none-any.whl

.PHONY: lint
lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check ec2batch tests launcher_lambda
	$(BIN)/ruff format --check ec2batch tests launcher_lambda

.PHONY: fmt
fmt: $(STAMP) ## Format the Python code
	$(BIN)/ruff format ec2batch tests launcher_lambda
	$(BIN)/ruff check --fix ec2batch tests launcher_lambda

.PHONY: bench
bench: $(STAMP) ## Print figures: trigger->first line and exit->stopped vs bare docker run, launcher calls, timers
	$(BIN)/python -m ec2batch.local.bench

# ---------------------------------------------------------------- artifacts
.PHONY: lambda-zip
lambda-zip: $(STAMP) ## Build dist/launcher.zip (the launcher Lambda)
	$(BIN)/python launcher_lambda/build.py --out dist/launcher.zip

.PHONY: wheels
wheels: $(STAMP) ## Build dist/wheels: the agent's wheel and its dependencies, for Packer
	rm -rf dist/wheels
	$(BIN)/pip wheel --quiet --wheel-dir dist/wheels .

.PHONY: packer-check
packer-check: ## packer fmt -check and validate (the docker source with Debian's Packer 1.6.6)
	mkdir -p dist/wheels
	cd packer && packer fmt -check ec2batch.pkr.hcl
	cd packer && packer validate -only=docker.instance -var agent_version=0.0.0 ec2batch.pkr.hcl

.PHONY: ami
ami: wheels ## Build the AMI in your AWS account (needs current Packer with the amazon plugin)
	cd packer && packer init . && packer build -only=amazon-ebs.instance \
		-var agent_version=$$($(BIN)/python -c 'import ec2batch; print(ec2batch.__version__)') .

.PHONY: instance-image
instance-image: $(STAMP) ## Build the local instance image (Packer's docker source) in the local stack
	$(BIN)/ec2batch local up

# ---------------------------------------------------------------- using it
.PHONY: local-up
local-up: $(STAMP) ## Start the local stack (as root); `ec2batch local status` shows it
	$(BIN)/ec2batch local up

.PHONY: local-down
local-down: $(STAMP) ## Stop the local stack
	$(BIN)/ec2batch local down

.PHONY: run-now
run-now: $(STAMP) ## Run JOB now and follow its logs (LOCAL=1: on the local stack)
	$(LOCAL_ENV) $(BIN)/ec2batch run-now $(JOB) --follow

.PHONY: runs
runs: $(STAMP) ## Show JOB's runs (LOCAL=1: on the local stack)
	$(LOCAL_ENV) $(BIN)/ec2batch runs $(JOB)
