# Two entry points: `make run` and `make test`. Both build .venv from nothing when it is missing.
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install run test lint proto

install: $(STAMP)

$(PY):
	python3 -m venv $(VENV)

# torch goes first and exactly at 2.13.0 (the local CPU wheel); any other resolution would pull
# several GB of CUDA packages.
$(STAMP): setup.py | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -e '.[test]'
	touch $(STAMP)

# The server's default data root is ./data; the demo scenes are generated there once, so the
# New dataset form has folders to point at on a fresh machine.
DEMO := data/demo

run: install $(DEMO)
	$(VENV)/bin/digitslite serve --host 127.0.0.1 --port 5000

$(DEMO): | $(STAMP)
	$(VENV)/bin/digitslite demo --out $(DEMO)

# pytest exits 5 when it collected nothing: that is reported loudly and not counted as a failure;
# every other non-zero exit fails the target.
test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2 tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; exit 0; fi; exit $$rc

lint: install
	$(VENV)/bin/ruff check .

# Regenerate the committed protobuf module after editing caffe.proto.
proto: install
	cd digitslite/caffe && ../../$(PY) -m grpc_tools.protoc -I. --python_out=. caffe.proto
