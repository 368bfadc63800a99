"""Services of the final product: integration decisions, exports and product comparisons."""
