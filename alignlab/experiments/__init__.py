"""Recipes that compose stages and instruments."""
