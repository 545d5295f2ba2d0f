"""The model families on the shared engine: one package per family (config, classes, heads) and the
``model_type`` registry (:mod:`fastbert.registry`) that every app uses to find them.

Importing this package imports no model code: the registry names classes and imports a family's module on
first use.
"""
