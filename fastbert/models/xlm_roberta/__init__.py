"""XLM-RoBERTa on the shared engine: RoBERTa's architecture under transformers' ``XLMRoberta*`` names."""
