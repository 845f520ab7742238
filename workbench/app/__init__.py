"""The desktop app's Qt-free side: what the GUI shows and edits (workspace, projects, autosave, graph layout)
and how it talks to the engine process (requests and their handlers, the child's protocol).

The engine (``workbench``'s other modules, ``workbench.cli``, ``workbench.report``) never imports this package
(an import-linter contract); ``ui`` builds on it.
"""
