"""Data sets that need no download: scikit-learn's digits and procedurally generated images."""
