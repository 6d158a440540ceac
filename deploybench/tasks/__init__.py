"""Built-in tasks. They register through the ``deploybench`` entry-point group like any plugin."""
