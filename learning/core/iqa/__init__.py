"""Image-quality assessment of block imagery: coverage-type classifier and thin-cloud features."""
