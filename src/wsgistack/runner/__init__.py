"""The runner supervises: it starts the processes the start wrote (``processes.json``, see
:mod:`wsgistack.start`) and stops them all when one stops. It imports nothing of wsgistack
but :mod:`wsgistack.contracts`: it is what a container execs, and it trusts only what
those contracts check."""
