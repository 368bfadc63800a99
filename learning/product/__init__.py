"""The final product, on top of learning: integration, exports, comparison with other maps."""
