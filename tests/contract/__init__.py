"""The product contract of issue 20: the ``convzoo`` command driven as a user drives it.

- :mod:`tests.contract.run`: a cell (a command line and what it must give), and running
  many of them: in one interpreter (:mod:`tests.contract.driver`) or each in a process of
  the installed ``convzoo`` script;
- :mod:`tests.contract.read`: the output read back, in every format;
- :mod:`tests.contract.checks`: what a cell must give: ``ok`` and the flag's effect, or
  ``refused`` in one line naming what does not apply;
- :mod:`tests.contract.cells`: the matrix, every ``(command, option)`` of the parser -> its
  cells, over every kind of target (:mod:`tests.contract.matrix`), with ``report``,
  ``compare`` and ``init-check`` in modules of their own.

``tests/test_contract.py`` runs it.
"""
