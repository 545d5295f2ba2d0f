"""ELECTRA on the shared engine: ``ElectraConfig`` and transformers' ``Electra*`` classes."""
