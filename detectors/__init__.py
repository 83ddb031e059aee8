"""Built-in detector plugins (entry point group ``aiops.detectors``)."""
