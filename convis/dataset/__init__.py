"""Indexing a dataset into a store, engine-free: prepare (hash, decode, pad) -> encode -> write.

`local.index_dataset` runs the three steps in one process (the default); `ray_engine` runs the same
steps on Ray Data across GPUs (the optional `ray` extra).
"""
