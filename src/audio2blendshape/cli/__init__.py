"""The command line: one thin module per command group that parses arguments and wires the packages.

Lives here: ``main`` (dispatch), ``help`` (the one-line help table), ``train``, ``data`` (and
``data_augment``, ``data_check``), ``animate``, ``stream``, ``expression`` (the expression options
``animate`` and ``stream`` share), ``evaluate``, ``preview``, ``studio``. May import anything; nothing
imports it (but ``__main__``).
"""
