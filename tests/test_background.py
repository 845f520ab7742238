"""``analyzers.background.alongside``: the result or the error comes back where it is collected, on a helper
thread natively and on the calling thread where numpy may not run in two (the QEMU emulation CI uses)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from analyzers import background


def _where_and_sum(a):
    return threading.get_ident(), float(np.square(a).sum())


def _fails(name):
    raise ValueError(f"bad {name}")


@pytest.mark.parametrize("emulated", [False, True])
def test_result_and_error_come_back_where_collected(emulated, monkeypatch):
    if emulated:
        monkeypatch.setenv(background.EMULATED_ENV, "Haswell")
    else:
        monkeypatch.delenv(background.EMULATED_ENV, raising=False)
    get = background.alongside(_where_and_sum, np.arange(4.0))
    ident, total = get()
    assert total == 14.0
    assert (ident == threading.get_ident()) == emulated  # inline only under the emulation
    failed = background.alongside(_fails, "weights")
    with pytest.raises(ValueError, match="bad weights"):
        failed()
