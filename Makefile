# make docs: build the documentation site into docs/_build/html (warnings are errors).
# The [docs] extra is installed into .venv-docs, a virtual environment that sees the packages
# already installed, so building the site changes nothing in the main environment.
PYTHON ?= python
VENV := .venv-docs

.PHONY: docs clean-docs

docs:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[docs]"
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html

clean-docs:
	rm -rf docs/_build docs/api/generated docs/notebooks
