"""ModernBERT on the shared engine: ``ModernBertConfig`` and transformers' ``ModernBert*`` classes."""
