"""The Rego policies and their data, shipped in the wheel as `gateway.policies`.

This file only makes the directory an importable package (see pyproject.toml); OPA
loads the .rego and .json files and ignores it.
"""
