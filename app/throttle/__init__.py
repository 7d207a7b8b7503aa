"""Fixed-window rate limits in the database: subscribe forms and dashboard logins."""
