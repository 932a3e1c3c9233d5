"""Test-only: lets tests/test_kill.py stop a painter subprocess at a known point mid-work.

Python imports `sitecustomize` at start-up from the first folder on sys.path that has one, so a
process started with this folder first on PYTHONPATH loads this file. Nothing happens unless
PAINTER_TEST_PAUSE is set, to "DESC@ITEM" or "DESC#NTH@ITEM": the NTH (default first) progress
bar whose description starts with DESC creates the file named by PAINTER_TEST_PAUSED and sleeps,
so that the test can SIGKILL the process there. It does so just before handing out item ITEM
(counting from 0) of what it iterates over, or, for a bar advanced by hand (generate's), once
ITEM units are done. Every stage's work loop runs through such a bar.
"""

import os

_SPEC = os.environ.get("PAINTER_TEST_PAUSE")

if _SPEC:
    import time
    from pathlib import Path

    import pipeline.progress as _progress

    _where, _, _item = _SPEC.rpartition("@")
    _DESC, _, _nth = _where.partition("#")
    _ITEM, _NTH = int(_item), int(_nth or 1)
    _bars_seen = 0

    def _pause() -> None:
        Path(os.environ["PAINTER_TEST_PAUSED"]).write_text(str(os.getpid()))
        time.sleep(120)  # the test kills us long before; a forgotten process goes on by itself

    class _PausingBar(_progress.tqdm):
        def __init__(self, *args, **kwargs):
            global _bars_seen
            super().__init__(*args, **kwargs)
            self._pause_here = False
            if str(getattr(self, "desc", "")).startswith(_DESC):  # a disabled bar has no desc
                _bars_seen += 1
                self._pause_here = _bars_seen == _NTH

        def __iter__(self):
            for index, item in enumerate(super().__iter__()):
                if self._pause_here and index == _ITEM:
                    self._pause_here = False
                    _pause()
                yield item

        def update(self, n=1):
            shown = super().update(n)
            if self._pause_here and self.n >= _ITEM:
                self._pause_here = False
                _pause()
            return shown

    _progress.tqdm = _PausingBar  # progress_bar() looks the class up at each call
