"""The part-B pages' training UI: ``settings`` (the configuration widgets), ``live`` (a running job) and
``results`` (a finished run)."""
