"""Benchmarks: cr-agent beside its peers on one Docker engine and one registry. See bench/README.md."""
