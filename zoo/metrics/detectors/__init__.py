"""Feature networks behind the metrics (I3D for FVD/KVD, C3D for IS) and their checksummed weights."""
