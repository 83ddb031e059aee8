"""Built-in remediation plugins (entry point group ``aiops.remediations``)."""
