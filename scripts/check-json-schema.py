#!/usr/bin/env python3
"""Validates a JSON document (stdin) against a JSON Schema file: exit 0 when valid, 1 with
every error listed otherwise. Used by the tests of the commands' --json output."""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
document = json.load(sys.stdin)
errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(document), key=lambda e: list(e.absolute_path))
for error in errors:
    print("/".join(str(p) for p in error.absolute_path) or "(root)", ":", error.message)
sys.exit(1 if errors else 0)
