"""MPNet on the shared engine: ``MPNetConfig`` and transformers' ``MPNet*`` classes."""
