/* wsgistack term-drain: an LD_PRELOAD library for platforms that send SIGTERM to every
 * process at once (Heroku), where a graceful stop must still let in-flight requests finish.
 *
 * nginx treats SIGTERM as a *fast* shutdown (open connections are cut) and installs its
 * handlers itself, so an ignored or blocked SIGTERM inherited from its parent does not help.
 * uWSGI's workers exit at once on SIGTERM. wsgistack's process manager loads this library
 * into both, with _WSGISTACK_TERMDRAIN naming the program:
 *
 *   nginx  SIGTERM runs nginx's own SIGQUIT handler: a graceful shutdown (stop accepting,
 *          finish every request), in the master and in the workers.
 *   uwsgi  the workers ignore SIGTERM; the master keeps its handler, which wsgistack maps to
 *          gracefully_kill_them_all, so the workers finish their requests and then exit.
 *
 * Only the process started with the variable acts on it (and its forks, and a re-exec of
 * itself: uWSGI's master re-executes on reload). A program it executes (an app's subprocess)
 * inherits LD_PRELOAD but finds another pid in _WSGISTACK_TERMDRAIN_PID and changes nothing.
 *
 * Built in the image's builder stage when the Dockerfile is for Heroku (`wsgistack heroku`):
 *   gcc -O2 -shared -fPIC -o wsgistack-termdrain.so termdrain.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OFF, NGINX, UWSGI };

static int mode = OFF;
static pid_t leader; /* the nginx or uWSGI master */
static void (*nginx_handler)(int, siginfo_t *, void *);
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static int call_sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction)
        real_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
    return real_sigaction(sig, act, old);
}

static void term_as_quit(int sig, siginfo_t *info, void *context) {
    (void)sig;
    nginx_handler(SIGQUIT, info, context);
}

__attribute__((constructor)) static void termdrain_init(void) {
    const char *name = getenv("_WSGISTACK_TERMDRAIN");
    const char *owner = getenv("_WSGISTACK_TERMDRAIN_PID");
    char me[24];

    if (!name)
        return;
    snprintf(me, sizeof me, "%ld", (long)getpid());
    if (owner && strcmp(owner, me) != 0)
        return; /* executed by nginx or uWSGI: not ours to change */
    setenv("_WSGISTACK_TERMDRAIN_PID", me, 1);
    leader = getpid();
    if (strcmp(name, "nginx") == 0)
        mode = NGINX;
    else if (strcmp(name, "uwsgi") == 0)
        mode = UWSGI;
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (sig == SIGTERM && act && mode != OFF) {
        struct sigaction changed = *act;
        if (mode == NGINX && (act->sa_flags & SA_SIGINFO) && act->sa_sigaction) {
            nginx_handler = act->sa_sigaction;
            changed.sa_sigaction = term_as_quit;
            return call_sigaction(sig, &changed, old);
        }
        if (mode == UWSGI && getpid() != leader) {
            changed.sa_flags &= ~SA_SIGINFO;
            changed.sa_handler = SIG_IGN;
            return call_sigaction(sig, &changed, old);
        }
    }
    return call_sigaction(sig, act, old);
}

/* glibc's signal() does not go through the sigaction symbol, and uWSGI uses both. */
sighandler_t signal(int sig, sighandler_t handler) {
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    act.sa_flags = SA_RESTART;
    if (sigaction(sig, &act, &old) < 0)
        return SIG_ERR;
    return old.sa_handler;
}
