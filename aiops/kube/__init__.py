"""Thin adapters over the official ``kubernetes`` client: read cluster state; write only through the guarded writer."""
