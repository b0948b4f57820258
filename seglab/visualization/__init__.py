"""Pictures and tables for people: prediction grids, confusion matrices, text tables."""
