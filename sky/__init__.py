"""Sky and air layers: field blocks, the STAC imagery catalog, per-block index statistics."""
