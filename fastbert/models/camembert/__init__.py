"""CamemBERT on the shared engine: RoBERTa's architecture under transformers' ``Camembert*`` names."""
