"""Figures and the HTML report from run directories."""
