"""Side-by-side benchmark harness behind ``wsgistack bench``.

Modules:

* :mod:`.load`     -- run wrk (or the pure-Python fallback) and parse its output.
* :mod:`.pyload`   -- the pure-Python load generator and burst client (subprocess entry point).
* :mod:`.benchapp` -- the WSGI wrapper every stack serves (adds ``/slow`` and whitenoise).
* :mod:`.stacks`   -- one definition per stack: writes config files, returns process argv lists.
* :mod:`.procs`    -- the OS seam: start, wait for readiness, stop, measure memory.
* :mod:`.harness`  -- interleaved rounds, medians, ratios, serial bound, target checks.
* :mod:`.report`   -- rich table and Markdown report.
"""
