"""BERT on the shared engine: transformers' ``Bert*`` classes (``BertConfig`` is ``fastbert.config``'s)."""
