"""The model families, by ``model.kind``. A family is one module here (its ``AutoEncoder`` class),
its section of params.yaml in ``sections.py``, and one entry in ``families.FAMILIES``; its defaults
are in params.yaml. Nothing is imported here, so that the params schema can read ``sections.py``
without torch."""
