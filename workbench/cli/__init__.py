"""The ``qwb`` command line: thin commands over the same core API the GUI uses."""
