"""Lengths and their units."""
