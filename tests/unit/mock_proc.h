/*
 * mock_proc — starts one of the Node stand-ins of tests/js/ (a push
 * service mock, an HTTP/2 server) as a child process for a cmocka test,
 * waits until it prints its first line ("ready <port> ..." or JSON), and
 * kills and reaps it at the end. Also makes the test's keys and a
 * self-signed certificate with the openssl CLI in a temporary directory.
 * Header-only (static functions): each test program takes its own copy;
 * CMake builds only tests/unit/<layer>/test_<module>.c.
 */
#ifndef HD_TEST_MOCK_PROC_H
#define HD_TEST_MOCK_PROC_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MOCK_READY_MS 30000  /* a loaded machine starts node slowly */
#define MOCK_LINE_MAX 8192

struct mock_proc {
	pid_t pid;
	int out;                     /* the read end of its stdout */
	char line[MOCK_LINE_MAX];    /* its first line, without the newline */
};

/* Whether node is on PATH; tests that need it skip cleanly otherwise. */
static inline bool mock_node_available(void)
{
	static int known = -1;

	if (known < 0) {
		known = system("command -v node >/dev/null 2>&1") == 0;
		if (!known)
			fprintf(stderr, "node is not on PATH: the tests against the Node mocks are skipped\n");
	}
	return known;
}

/* The absolute path of tests/js/<script> (from this file's own path). */
static inline void mock_script_path(const char *script, char *out, size_t cap)
{
	const char *here = __FILE__;
	const char *cut = strstr(here, "tests/unit/");

	snprintf(out, cap, "%.*stests/js/%s", cut ? (int)(cut - here) : 0, here, script);
}

/*
 * Starts `node tests/js/<script> args...` (args NULL-terminated) and waits
 * for its first line. Returns true when it came in time; false (process
 * reaped) otherwise.
 */
static inline bool mock_start(struct mock_proc *m, const char *script, const char *const *args)
{
	char path[4096];
	const char *argv[32];
	int fds[2];
	size_t n = 0, len = 0;

	mock_script_path(script, path, sizeof(path));
	argv[n++] = "node";
	argv[n++] = path;
	for (; args && *args && n < 31; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (pipe(fds) != 0)
		return false;
	m->pid = fork();
	if (m->pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execvp("node", (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	m->out = fds[0];
	m->line[0] = '\0';
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = MOCK_READY_MS - ((t.tv_sec - t0.tv_sec) * 1000 +
					     (t.tv_nsec - t0.tv_nsec) / 1000000);
		struct pollfd pfd = {.fd = m->out, .events = POLLIN};
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			break;
		ssize_t r = read(m->out, m->line + len, sizeof(m->line) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		m->line[len] = '\0';
		char *nl = strchr(m->line, '\n');
		if (nl) {
			*nl = '\0';
			return true;
		}
		if (len + 1 >= sizeof(m->line))
			break;
	}
	fprintf(stderr, "mock %s did not get ready (got '%s')\n", script, m->line);
	kill(m->pid, SIGKILL);
	waitpid(m->pid, NULL, 0);
	close(m->out);
	m->pid = 0;
	return false;
}

/* Kills the mock and reaps it. */
static inline void mock_stop(struct mock_proc *m)
{
	if (m->pid <= 0)
		return;
	kill(m->pid, SIGKILL);
	while (waitpid(m->pid, NULL, 0) < 0 && errno == EINTR)
		;
	close(m->out);
	m->pid = 0;
}

/* A fresh temporary directory into dir (room for 64). */
static inline bool mock_tmpdir(char *dir)
{
	strcpy(dir, "/tmp/hd_mock_XXXXXX");
	return mkdtemp(dir) != NULL;
}

/* Runs a shell command; true when it exited 0. */
static inline bool mock_sh(const char *fmt, const char *a, const char *b)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd), fmt, a, b);
	return system(cmd) == 0;
}

/* Writes dir/cert.pem and dir/cert.key: a self-signed P-256 certificate for
 * 127.0.0.1 and localhost (the client trusts it through its CA file). */
static inline bool mock_make_cert(const char *dir)
{
	return mock_sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		       "-keyout '%s/cert.key' -out '%s/cert.pem' -days 1 -subj /CN=localhost "
		       "-addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1",
		       dir, dir);
}

/* Removes dir and what the test put there. */
static inline void mock_rmdir(const char *dir)
{
	mock_sh("rm -rf '%s'%s", dir, "");
}

#endif
