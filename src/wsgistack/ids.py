"""Every id a wsgistack error can carry, declared once with what it means and the usual fix.

Raise sites name these constants (``raise WsgistackError(ids.RUN_E002, message, hint)``),
never a literal id; ``docs/errors.md`` is generated from this list
(``python -m wsgistack.ids > docs/errors.md``) and a test keeps the two in sync, as
docs/doctor.md is kept with the checks' ids. The hint given at a raise site is the specific
one; the one declared here is the general advice, used when a raise site gives none.
"""

from __future__ import annotations

import sys

from wsgistack.errors import ERRORS, declare

# --- app: finding and loading the WSGI application -------------------------------------------
APP_E001 = declare("app.E001", "no WSGI application found in the project directory",
                   "point wsgistack at it: `wsgistack run module:callable`, --app, or app.target in wsgistack.toml")
APP_E002 = declare("app.E002", "the module of the WSGI target could not be found",
                   "check the spelling and that PATH (or app.path) is the directory the module is imported from")
APP_E003 = declare("app.E003", "importing the app's module raised an exception",
                   "the traceback shown is from the app's code: fix it, then run again")
APP_E004 = declare("app.E004", "the module has no attribute of the target's name",
                   "name the object that is the WSGI application (module:callable)")
APP_E005 = declare("app.E005", "the target is not a WSGI callable",
                   "point at the application object (e.g. app = Flask(__name__)), or module:factory() for a factory")
APP_E006 = declare("app.E006", "calling the app factory raised an exception",
                   "the traceback shown is from the app's code: fix it, then run again")
APP_E007 = declare("app.E007", "a Django project, but Django is not installed in the app's environment",
                   "install the project's requirements with the app's interpreter, or point app.python (--python) at it")
APP_E008 = declare("app.E008", "the Django settings do not set WSGI_APPLICATION",
                   'add WSGI_APPLICATION = "<project>.wsgi.application"')
APP_E009 = declare("app.E009", "the app probe failed in an unexpected way",
                   "run the app's import by hand with its interpreter to see the problem")
APP_E011 = declare("app.E011", "importing the app did not finish in time (app.import_timeout)",
                   "the stack shown is where the import waits (a database, a network service, input): connect lazily, "
                   "or raise app.import_timeout")
APP_E010 = declare("app.E010", "manage.py does not name a settings module",
                   "set app.django_settings in wsgistack.toml or DJANGO_SETTINGS_MODULE")

# --- balancer, rollout: several nodes behind HAProxy -----------------------------------------
BALANCER_E001 = declare("balancer.E001", "the balancer has no nodes",
                        "give them: wsgistack balance --node HOST:PORT ..., or balancer.nodes in wsgistack.toml")
BALANCER_E002 = declare("balancer.E002", "the node named is not one of the balancer's", "name a node from balancer.nodes (or --node), as host:port")
BALANCER_E003 = declare("balancer.E003", "HAProxy refuses the rendered haproxy.cfg",
                        "a wsgistack bug unless a [balancer] setting is at fault: check the lines HAProxy names")
BALANCER_E004 = declare("balancer.E004", "haproxy is not installed (or not on PATH)", "install it: sudo apt-get install haproxy")
BALANCER_E005 = declare("balancer.E005", "a balancer from another `wsgistack balance` is running in this runtime dir",
                        "stop it first, or set a different runtime_dir")
BALANCER_E006 = declare("balancer.E006", "HAProxy's runtime API cannot be reached",
                        "is `wsgistack balance` running with the same settings (runtime_dir)? run this as the same user")
BALANCER_E007 = declare("balancer.E007", "HAProxy refused to change a server's state", "read HAProxy's reply in the message")
BALANCER_E008 = declare("balancer.E008", "role = balancer is started by `wsgistack balance` (or the image's entrypoint), "
                        "not by the stack commands", "run `wsgistack balance` with the same settings, or give this command another role")
ROLLOUT_E001 = declare("rollout.E001", "updating a node failed; the rollout stops there",
                       "the node stays drained and the others serve: fix it, then run the rollout again")
ROLLOUT_E002 = declare("rollout.E002", "a node is not ready after its update; the rollout stops there",
                       "the node stays drained and the others serve: see its log, then run the rollout again")
ROLLOUT_E003 = declare("rollout.E003", "a node is not on this machine and no --command says how to update it",
                       "give one, e.g. --command 'ssh {host} sudo systemctl reload myapp'")
ROLLOUT_E004 = declare("rollout.E004", "no other node is up: draining this one would leave nothing serving",
                       "bring the other nodes back first")
ROLLOUT_E005 = declare("rollout.E005", "the compose fleet's containers cannot be found or do not match the balancer's nodes",
                       "bring the fleet up first (docker-compose up -d) and give rollout the same file and project name (-p)")
ROLLOUT_E006 = declare("rollout.E006", "the new image is not on this Docker engine", "build it first (wsgistack build -t IMAGE), or docker pull it")

# --- verify: probe traffic while something changes (rollout --verify, reload --verify) ----------
VERIFY_E001 = declare("verify.E001", "probe requests failed while the change ran",
                      "the line before says how many and which: look at the balancer's and the nodes' logs for those seconds")
VERIFY_E002 = declare("verify.E002", "the probe's path fails before anything was changed",
                      "name a path that answers 2xx or 3xx (--verify /, --verify-post a CSRF-exempt path); nothing was touched")

# --- config: reading and validating the configuration ---------------------------------------
CONFIG_E001 = declare("config.E001", "a setting has an invalid value", "the message names the setting, where it came from and what it accepts")
CONFIG_E002 = declare("config.E002", "an unknown setting in the config file", "check the spelling (`wsgistack config` lists every setting)")
CONFIG_E003 = declare("config.E003", "an unknown WSGISTACK_* variable in the environment",
                      "check the spelling: WSGISTACK_<SECTION>__<KEY> (docs/settings.md)")
CONFIG_E004 = declare("config.E004", "the config file cannot be read or is not valid TOML", "fix the syntax or the file's permissions")
CONFIG_E005 = declare("config.E005", "role = web without uwsgi.uri", "set UWSGI_URI (or WSGISTACK_UWSGI__URI) to the app container's uWSGI socket")
CONFIG_E006 = declare("config.E006", "request_timeout does not fit inside the platform router's limit",
                      "lower request_timeout, or leave it at auto")
CONFIG_E007 = declare("config.E007", "both wsgistack.toml and [tool.wsgistack] in pyproject.toml configure wsgistack",
                      "keep one of them")
CONFIG_E008 = declare("config.E008", "the unix socket path is longer than the kernel allows",
                      "set runtime_dir to a shorter directory, e.g. /tmp/myapp")
CONFIG_E009 = declare("config.E009", "started as root with no unprivileged user to run the app as",
                      'set user = "appuser" (an existing unprivileged account), or start wsgistack as that user')
CONFIG_E010 = declare("config.E010", "uwsgi.options sets an option wsgistack manages itself",
                      "use wsgistack's own setting for it; the passthrough is for options wsgistack does not manage")
CONFIG_E011 = declare("config.E011", "uwsgi.tcp_host is not a loopback address while nginx runs beside uWSGI",
                      "leave it at 127.0.0.1; only role = app may listen on another address")
CONFIG_E012 = declare("config.E012", "tls.mode = files without tls.cert and tls.key", "set both (PEM files)")
CONFIG_E013 = declare("config.E013", "tls.mode set on the app role: only nginx terminates TLS", "set tls.mode on the web role (or role = all)")
CONFIG_E014 = declare("config.E014", "tls.mode = acme without a host name it can validate over HTTP-01",
                      "list each host name in server.server_names")
CONFIG_E015 = declare("config.E015", "tls.port is server.port: HTTPS and the plain-HTTP redirect need a port each",
                      "leave tls.port at 8443 (or 443), server.port at 8000 (or 80)")
CONFIG_E046 = declare("config.E046", "ops.port is also the site's port", "give the ops listener a port of its own, e.g. 9100")
CONFIG_E047 = declare("config.E047", "server.app_server = granian with a TCP socket: granian's TCP workers each own their socket, "
                      "so a respawning worker resets the connections queued on it",
                      "leave uwsgi.socket = unix (the default); for split containers share the unix socket on a volume")
CONFIG_E048 = declare("config.E048", "server.app_server = granian with a setting only uWSGI implements "
                      "(uwsgi.options, uwsgi.max_requests, uwsgi.request_log)",
                      "remove the setting (reload_on_rss recycles by memory with either server), or use app_server = uwsgi")
CONFIG_E049 = declare("config.E049", "server.app_server = granian on platform heroku: the term-drain library knows only "
                      "nginx's and uWSGI's signals",
                      "use app_server = uwsgi on Heroku")
CONFIG_E050 = declare("config.E050", "a path holds a character the config it is written into cannot carry",
                      "the runtime dir: letters, digits and . _ - + = , @ ~ / only (uwsgi.ini and haproxy.cfg name it "
                      "unquoted), e.g. /run/myapp or the default; a static or TLS path: no $, quote, backslash or control character")
CONFIG_E044 = declare("config.E044", "role = worker, and process names no [processes.NAME]",
                      "set WSGISTACK_PROCESS (or process) to the NAME of a [processes.NAME] table")

# --- docker: the image, its recipe and compose files ---------------------------------------
DOCKER_E001 = declare("docker.E001", "the project has no requirements file for the image",
                      "write one (pip freeze > requirements.txt), or name it with --requirements")
DOCKER_E002 = declare("docker.E002", "not a Debian package name", "give package names such as libpq5 or gcc")
DOCKER_E012 = declare("docker.E012", "docker is not installed (or not on PATH)", "install Docker (https://docs.docker.com/engine/install/)")
DOCKER_E004 = declare("docker.E004", "the Docker engine is not reachable", "start it (systemctl start docker) and check that you may use it")
DOCKER_E005 = declare("docker.E005", "the base image could not be pulled", "check --base and the network")
DOCKER_E006 = declare("docker.E006", "installing the app's requirements failed in the image",
                      "read pip's message; a package that compiles C code needs --build-package gcc --build-package "
                      "python3-dev and its library's headers (kept in wsgistack.toml: [image] build_packages)")
DOCKER_E007 = declare("docker.E007", "installing Debian packages failed in the image", "check the package names (--package, --build-package)")
DOCKER_E008 = declare("docker.E008", "copying files into the image failed", "a file missing from the build context (excluded by .dockerignore?)")
DOCKER_E009 = declare("docker.E009", "docker build failed", "read the build output; rerun with --plain to see all of it")
DOCKER_E010 = declare("docker.E010", "a `wsgistack compose` option has a bad value (--env, --tcp-uri, --fleet, --port)",
                      "the message names the option and gives an example, e.g. -e DJANGO_DEBUG=0")
DOCKER_E011 = declare("docker.E011", "a file wsgistack would write exists and was not written by wsgistack",
                      "pass --force to replace it (keep a copy)")
DOCKER_E013 = declare("docker.E013", "a requirements file includes (-r/-c) a file outside the project",
                      "the build context is the project directory: move the file into it, or inline its lines")
DOCKER_E015 = declare("docker.E015", "the app cannot be imported here, so the compose file or manifests would lack the volumes "
                      "of the directories it writes", "give its settings what they need here, build the image first "
                      "(`wsgistack build -t IMAGE`: its own Python finds them), or pass --no-detect")
DOCKER_E014 = declare("docker.E014", "the running wsgistack is not installed (no metadata for the image's wheel)",
                      "install it (pipx install /path/to/wsgistack, or pip install -e . in a checkout) and run that one")

# --- entrypoint, kube, ops, prestart, python, run, tls -------------------------------------
ENTRYPOINT_E001 = declare("entrypoint.E001", "role web: the uWSGI upstream is not reachable",
                          "start the app container (WSGISTACK_ROLE=app) first and check that UWSGI_URI names its socket")
ENTRYPOINT_E002 = declare("entrypoint.E002", "the one-off command given to the image is not a program in it",
                          "give a program on the image's PATH and its arguments: docker run IMAGE python manage.py check")
INTERNAL_E001 = declare("internal.E001", "an unexpected error (a bug, or an operating-system error)",
                        "run the command again with --debug for the traceback, and report it if it is wsgistack's")
KUBE_E001 = declare("kube.E001", "no image for the manifests", "pass --image (the image `wsgistack build` made, as a registry serves it)")
KUBE_E002 = declare("kube.E002", "kube.hosts names a host that server.server_names does not serve", "add it to server.server_names")
KUBE_E003 = declare("kube.E003", "the autoscaling bounds do not make sense", "set both kube.autoscale_min and kube.autoscale_max, minimum <= maximum")
KUBE_E004 = declare("kube.E004", "the split layout needs uWSGI on a unix socket", "use uwsgi.socket = unix (the default) with the split layout")
KUBE_E005 = declare("kube.E005", "tls.mode is on for the Kubernetes manifests: there the Ingress terminates TLS",
                    "set tls.mode = off for the manifests; give the Ingress its certificate (kube.hosts + kube.tls_secret)")
KUBE_E006 = declare("kube.E006", "kube.env sets a setting the manifests set themselves (port, host, server names, "
                    "health paths, stop_timeout, role...)", "drop it from kube.env; change the setting it derives from and regenerate")
OPS_E001 = declare("ops.E001", "nothing is running in the runtime dir",
                   "start it with `wsgistack run` (same directory and settings), or pass the same --runtime-dir")
OPS_E002 = declare("ops.E002", "uWSGI's master FIFO cannot be opened", "run as the user that started the stack")
OPS_E003 = declare("ops.E003", "this reload would move the site to another address or port", "pass --yes to move it, or undo the change")
OPS_E004 = declare("ops.E004", "no usable record of the settings the stack was started with",
                   "restart the stack with this version of wsgistack, or reload without re-rendering: --no-render")
OPS_E005 = declare("ops.E005", "reload --chain without app.lazy_apps would keep serving the old code",
                   "set app.lazy_apps = true and reload once without --chain (it applies it), or reload without --chain")
OPS_E006 = declare("ops.E006", "the stack's log file is not there or not readable by this user (state/stack.log in the runtime dir)",
                   "start the stack with this version of wsgistack (its process manager writes the file), pass the "
                   "same --runtime-dir, and run as the user that started it")
OPS_E007 = declare("ops.E007", "not a request id", "give the id from the X-Request-ID response header "
                   "(up to 200 of A-Z a-z 0-9 . _ : @ / + = -)")
OPS_E008 = declare("ops.E008", "`logs --node` has no way to the nodes' lines",
                   "for nodes on this machine give each one's runtime dir: --node-runtime-dir /srv/rt/{host}; for nodes "
                   "elsewhere a command that runs `wsgistack logs` there: --command 'ssh {host} wsgistack logs /srv/app {args}'")
OPS_E009 = declare("ops.E009", "a node's lines could not be read (the others are shown)",
                   "check that node's runtime dir or command (run it by hand), and that its stack runs")
OPS_E010 = declare("ops.E010", "not a node address for --node", "give host:port as `wsgistack balance --node` does "
                   "(e.g. --node 10.0.0.11:8000), or --node alone for every node in balancer.nodes, after PATH")
OPS_E011 = declare("ops.E011", "the stack did not stop within --wait (its manager still runs)",
                   "wait and run `wsgistack stop` again (a stop already under way goes on), give a longer --wait, "
                   "or look at `wsgistack logs` for what it waits for")
OPS_E012 = declare("ops.E012", "the stack runs as another user: this user may not signal its manager",
                   "run `wsgistack stop` as the user that started it (a stack root started: sudo wsgistack stop)")
PRESTART_E001 = declare("prestart.E001", "a prestart step could not start", "check app.prestart, and that the app's user can run it")
PRESTART_E002 = declare("prestart.E002", "a prestart step failed", "fix the problem its output shows, or switch the step off")
PRESTART_E003 = declare("prestart.E003", "SQLite is unable to open the database file (its directory is missing or not writable)",
                        "keep the database in $DATA_DIR (/data in the image, a volume: docker run -v myapp-data:/data IMAGE)")
PRESTART_E004 = declare("prestart.E004", "a prestart step cannot write a directory inside the project",
                        "in the image: rebuild with wsgistack build --writable DIR, or move that data to $DATA_DIR")
PYTHON_E001 = declare("python.E001", "app.python is not a Python interpreter or a virtualenv",
                      "point it at the app's interpreter (e.g. /srv/app/.venv/bin/python) or its virtualenv directory")
PYTHON_E002 = declare("python.E002", "the app's interpreter does not run", "recreate that virtualenv, or point app.python at another one")
PYTHON_E003 = declare("python.E003", "pyuwsgi in the app's environment is too old", "upgrade it with the app's interpreter")
RUN_E001 = declare("run.E001", "nginx, or uWSGI in the app's environment, is not installed", "install it (the message says how)")
RUN_E002 = declare("run.E002", "another wsgistack run is still running in this runtime dir",
                   "stop it first, or set a different runtime_dir")
RUN_E003 = declare("run.E003", "nginx's workers could not reach the uWSGI socket",
                   "put the runtime dir somewhere they can traverse, e.g. --runtime-dir /tmp/myapp")
RUN_E004 = declare("run.E004", "the user the app runs as cannot read the interpreter or the project",
                   "install the app and its virtualenv where that user can read them, or set user")
RUN_E005 = declare("run.E005", "the user the app runs as cannot write a directory the app writes (STATIC_ROOT, MEDIA_ROOT, a SQLite database's)",
                   "chown the directories to that user (the message gives the exact command)")
RUN_E006 = declare("run.E006", "another process already listens on the address and port nginx would listen on",
                   "stop it (`ss -ltnp` names it) or give the stack another port (--port, PORT, server.port; --tls-port)")
TLS_E001 = declare("tls.E001", "the ACME CA refused or failed to issue the certificate (logged by the renewer, retried)",
                   "read the CA's message in the log")
TLS_E002 = declare("tls.E002", "the ACME HTTP-01 challenge does not reach nginx (logged by the renewer, retried)",
                   "make port 80 (tls.challenge_port) reach this nginx for every host name")
TLS_E003 = declare("tls.E003", "tls.mode = acme and no ACME client (certbot) is installed",
                   "pip install 'wsgistack[acme]' (or apt-get install certbot)")


# --- trust: files one process writes and another believes (contracts.py) ---------------------
TRUST_E001 = declare("trust.E001", "a file wsgistack was about to believe could have been written by someone else "
                     "(its owner, its mode, a link, or its directory)",
                     "remove it (or the stack's runtime dir) and restart the stack; wsgistack writes these files "
                     "itself, owned by the user that started it and writable by no one else")
TRUST_E002 = declare("trust.E002", "a file another wsgistack process wrote cannot be used (unreadable, malformed, "
                     "another version)", "restart the stack with this version of wsgistack (it writes the file anew)")
RUN_E007 = declare("run.E007", "the runtime dir is not the starting user's own (another owner, a link, or writable by others)",
                   "remove it and start again, or set runtime_dir to a directory of your own (--runtime-dir)")

def markdown() -> str:
    lines = [
        "# Errors",
        "",
        "<!-- Generated by `python -m wsgistack.ids > docs/errors.md` from the ids declared in",
        "src/wsgistack/ids.py. Do not edit by hand: a test compares the two. -->",
        "",
        "Every error wsgistack reports reads `error[<id>]: <message>` with a `hint:` line. The",
        "exit code is 2 for bad input (config, app), 3 for a missing system dependency, 1 otherwise;",
        "`wsgistack --debug ...` adds the traceback. The ids of `wsgistack doctor`'s findings are in",
        "[doctor.md](doctor.md).",
        "",
        "| id | what happened | what to do |",
        "|---|---|---|",
    ]
    for spec in sorted(ERRORS.values(), key=lambda s: (s.split(".")[0], s)):
        lines.append(f"| `{spec}` | {spec.summary} | {spec.hint} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
