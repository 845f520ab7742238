"""``qwb tune``: find the cheapest mix of per-group precisions that meets an accuracy target.

``groups`` finds the units of change, ``evaluator`` measures one candidate recipe (in worker processes or Ray
tasks, ``pool``), ``search`` ranks the groups and selects moves (greedy and an exact ILP), verifying every
point on held-back data; ``target`` parses the goal. ``run_tune`` (``search``) is the one entry point the CLI
and, later, the GUI call.
"""
