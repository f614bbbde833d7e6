"""WSGI entry point: ``demo.wsgi:application``.

uWSGI normally puts the project directory on ``sys.path`` (``chdir`` /
``pythonpath``). Adding it here as well means the module also works when it is
loaded by file path (``--wsgi-file``) from an arbitrary working directory.
"""

import os
import sys
from pathlib import Path

_PROJECT_DIR = str(Path(__file__).resolve().parent.parent)
if _PROJECT_DIR not in sys.path:
    sys.path.insert(0, _PROJECT_DIR)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402  (needs sys.path above)

application = get_wsgi_application()
