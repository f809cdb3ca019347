"""Thin launchers for the things the benchmarks run: the peers and the fake ACR."""
