"""How a model trains at initialisation (issue 24): symmetric units, dead and saturated
activations, and the signal and gradients through depth, from one real forward and backward
on a private copy. :func:`~convzoo.initcheck.check.init_check` is the entry point
(``convzoo.init_check``, ``convzoo init-check``)."""
