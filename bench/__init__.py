"""Benchmarks of zeroprobe (`make bench`): not tests; they rewrite docs/benchmarks.md."""
