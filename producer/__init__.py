"""The producer's tools on top of the trained models: the ``dnb`` command line."""
