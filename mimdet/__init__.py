"""mimdet-ablate: the MIMDet model family in detectron2, one run end to end, and its record."""
