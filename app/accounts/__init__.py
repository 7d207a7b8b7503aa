"""Dashboard accounts: users with passwords, their sessions, reset links, the audit log."""
