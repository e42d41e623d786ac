# make docs:       the documentation site with every guide and notebook executed, into
#                  docs/_build/html (warnings are errors; several minutes on 2 cores).
# make docs-check: the same pages and API reference without executing any code, into
#                  docs/_build/check (warnings are errors; about a minute): what .ci/run builds.
#                  -E: a fresh environment every time (a saved one skipped the API stubs of a
#                  module added since, and the build failed).
# The [docs] extra is installed into .venv-docs, a virtual environment that sees the packages
# already installed, so building the site changes nothing in the main environment.
PYTHON ?= python
VENV := .venv-docs
SPHINX := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m sphinx -W --keep-going

.PHONY: docs docs-check docs-env clean-docs

docs-env:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[docs]"

# autosummary's stubs are rebuilt every time: a stale one for a removed name fails the build
docs: docs-env
	rm -rf docs/api/generated
	$(SPHINX) -b html docs docs/_build/html

docs-check: docs-env
	rm -rf docs/api/generated
	$(SPHINX) -E -D nb_execution_mode=off -b html docs docs/_build/check

clean-docs:
	rm -rf docs/_build docs/api/generated docs/notebooks
