"""DistilBERT on the shared engine: ``DistilBertConfig`` and transformers' ``DistilBert*`` classes."""
