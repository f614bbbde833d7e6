"""Django's prestart steps in ONE interpreter (run inside the app's environment).

``python -c <this file> collectstatic migrate`` (see wsgistack.app.interpreter.helper_argv): a single ``django.setup()``
instead of one per step saves about 0.5 s on every start (measured on the demo).
"""

from __future__ import annotations

import sys

STEP_MARKER = "##wsgistack-prestart-step "  # start/prestart.py reads it (a copy: this file imports nothing)


def main(steps: list[str]) -> int:
    import django
    from django.core.management import call_command

    django.setup()
    for step in steps:
        # Tells wsgistack which step the next lines are from (it streams them with its name).
        print(STEP_MARKER + step, flush=True)
        if step == "collectstatic":
            call_command("collectstatic", interactive=False, verbosity=0)
        elif step == "migrate":
            call_command("migrate", interactive=False, verbosity=1)
        else:
            print(f"unknown Django prestart step {step!r}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
