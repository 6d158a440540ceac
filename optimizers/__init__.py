"""Built-in optimizers, importable as ``deploybench_optimizers``.

Each module registers its optimizer through the ``deploybench`` entry-point group, exactly as a
third-party package does, and imports only the public ``deploybench`` API.
"""
