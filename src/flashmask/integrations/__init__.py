"""Integrations of :func:`flashmask.flashmask_attention` with other libraries (imported on demand)."""
