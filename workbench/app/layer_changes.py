"""Which layers a recipe change created or removed in the quantized model, said in words.

Keeping a Conv in FP32 un-fuses the Relu/Clip after it, which then becomes a quantized layer of its own (often
flagged); setting it back fuses it away. Without a word the user sees a new flagged row appear and cannot tell
why; this names the layers and the edit that caused them.
"""

from __future__ import annotations

from .workspace import Run


def _names(nodes: list[str], limit: int = 3) -> str:
    shown = ", ".join(nodes[:limit])
    return shown + (f" and {len(nodes) - limit} more" if len(nodes) > limit else "")


def structure_note(before: Run | None, after: Run) -> str | None:
    """A sentence naming the layers ``after`` has that ``before`` lacked (and the reverse), with the precision
    edits between their recipes; None when both runs quantized the same layers."""
    if before is None:
        return None
    old = {lay.node: lay for lay in before.result.layers}
    new = {lay.node: lay for lay in after.result.layers}
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    if not added and not removed:
        return None
    edits = sorted(n for n in set(before.recipe.layers) | set(after.recipe.layers)
                   if before.recipe.precision_of(n) != after.recipe.precision_of(n))
    cause = (f"Setting {_names([f'{n} to {after.recipe.precision_of(n).upper()}' for n in edits])}"
             if edits else "The recipe change")
    parts = []
    if added:
        flagged = sum(1 for n in added if new[n].flagged)
        parts.append(f"added {len(added)} layer(s) to the quantized model: {_names(added)}"
                     + (f" ({flagged} flagged)" if flagged else ""))
    if removed:
        parts.append(f"removed {len(removed)}: {_names(removed)}")
    why = (" (An activation fused into the layer before it becomes a layer of its own when that layer stays in "
           "float, and is fused again when that layer is quantized.)")
    return f"{cause} {' and '.join(parts)}." + why
