"""What every stage shares: the paths, the data's and the codes' shape and format, the schema's base,
errors and atomic writes. Nothing here imports a model, a training loop or an analysis."""
