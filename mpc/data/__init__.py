"""Data sources: id normalisation, declared schemas, and loading datasets into memory."""
