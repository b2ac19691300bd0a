"""What every stage shares: the params schema, the paths, the data's shape and format, errors and
atomic writes. Nothing here imports a model, a training loop or an analysis."""
