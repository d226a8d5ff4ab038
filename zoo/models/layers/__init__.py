"""Blocks shared by several models (attention, recurrent cells, modulated convolutions)."""
