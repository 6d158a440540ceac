"""Device tables: the deployment grid, recorded tables and their recording, reports and heterogeneity.

- :mod:`.grid`: the configurations of a deployment (model, backend, precision, batch, threads, knobs);
- :mod:`.table`: a recorded table read as untrusted input, packed, and its ground truth per scenario;
- :mod:`.recording`: ``deploybench record`` (passes, repeats near the caps, where measurements run);
- :mod:`.report`: ``deploybench table info``;
- :mod:`.heterogeneity`: how the nodes of a fleet recording differ.
"""
