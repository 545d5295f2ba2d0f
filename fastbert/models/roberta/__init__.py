"""RoBERTa on the shared engine: ``RobertaConfig`` and transformers' ``Roberta*`` classes."""
