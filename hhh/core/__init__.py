"""The bottom layer: device mesh and sharding rules, multi-host helpers, user paths, errors, FLOPs and set-level metrics."""
