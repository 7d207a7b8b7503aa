"""Site pages that belong to no single feature: the home page, the API docs, error pages."""
