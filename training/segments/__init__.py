"""Segmented requests: one request, a generic model and a model per segment value, packed into a few jobs."""
