"""The architecture-agnostic core under every model family: the op tables (``ops``: eager / sdpa / triton,
every fallback decided in ``resolve``), their torch references (``attention_ref``: :class:`AttentionSpec`
and attention in torch; ``layers_ref``: activations, GLU, norms, embeddings), packing (``padding``), the
CPU linears' reused buffers (``workspace``), the parity rule (``tolerances``) and the CUDA-graph runner
(``cuda_graphs``). It imports no model, no loading, no tokenizer and no application; only ``ops`` imports
``fastbert.kernels``. Nothing is imported here: ``import fastbert.core`` stays light.
"""
