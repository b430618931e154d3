"""Benchmarks behind `adainrt bench`: measured and reported, never asserted."""
