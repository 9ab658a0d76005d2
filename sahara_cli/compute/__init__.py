"""Collaborative computation: training and merging models on licensed data."""
