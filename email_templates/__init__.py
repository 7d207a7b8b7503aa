"""Broadsheet's default email templates, shipped inside the package as `app.email_templates`.

This file only makes the folder a package (pyproject.toml maps it into `app`), so that an
installed Broadsheet, editable or not, finds the templates through its own package.
"""
