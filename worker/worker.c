#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "child.h"
#include "imports.h"
#include "log.h"
#include "proxy.h"

extern char **environ;

#define MAX_SLOTS	64
#define MAX_PROCS	(MAX_SLOTS + 8)
#define STATS_SLOT_SIZE CHILD_STATS_SLOT_SIZE
#define LINE_MAX_LEN	1024
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	10000
#define STABLE_AFTER_MS 30000
#define ZYGOTE_REPLY_MS 1000

enum worker_state {
	STATE_IDLE,
	STATE_SPECIALIZING,
	STATE_READY,
	STATE_FAILED,
};

enum proc_kind {
	PROC_SERVER,
	PROC_JOB,
	PROC_ZYGOTE,
};

struct proc {
	int used;
	enum proc_kind kind;
	pid_t pid;
	int slot;
	int out_fd;   /* its stdout+stderr, relayed to ours */
	int ready_fd; /* servers: "ready" / "failed STEP REASON" lines */
	char out_buf[LINE_MAX_LEN];
	size_t out_len;
	char last_line[LINE_MAX_LEN];
	struct child_lines ready_lines;
	int serving;
	int exited;
	int status;
	long long started_ms;
	long long port_open_ms; /* script form, slot 0: when its port first accepted */
	char fail_step[32];
	char fail_reason[LINE_MAX_LEN];
};

struct slot {
	int proc; /* index into procs, -1 when none runs */
	int backend_port;
	int backoff_ms;
	long long restart_at_ms; /* 0: no restart pending */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t job_done;
	const struct worker_options *opts;

	enum worker_state state;
	struct spec_request req;
	int have_req;
	char step[32];
	char reason[LINE_MAX_LEN];
	long long t0_ms;
	long long specialize_ms;
	int restarts;
	int want_servers;
	int servers_started;
	int draining;
	long long drain_deadline_ms;
	int done;
	int used_zygote;
	int zygote_retired;

	struct proc procs[MAX_PROCS];
	struct slot slots[MAX_SLOTS];
	int nslots;
	char script_argv_json[LINE_MAX_LEN * 4]; /* script form: how slot 0 ran python */

	int kick_fd[2];
	int signal_fd;
	int zygote_sock;
	int zygote_proc;
	int zygote_ready;

	unsigned char *stats;
	char stats_path[4096];
	char config_path[4096];
	void (*wakeup)(void);
	struct proxy *proxy;
} w = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .job_done = PTHREAD_COND_INITIALIZER,
    .signal_fd = -1,
    .zygote_sock = -1,
    .zygote_proc = -1,
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void kick(void)
{
	char c = 'k';

	if (write(w.kick_fd[1], &c, 1) < 0 && errno != EAGAIN)
		log_warn("worker", "kick: %s", strerror(errno));
}

int worker_token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	unsigned char diff = (unsigned char)(la != lb);

	/* Always walks the whole of a: timing depends on the caller's input only. */
	for (i = 0; i < la; i++)
		diff |= (unsigned char)(a[i] ^ (i < lb ? b[i] : 0));
	return diff == 0 && la > 0;
}

/* Reads a small file (a mounted token or hash) into buf, trailing whitespace dropped.
 * Returns its length, or -1 after logging why. */
static ssize_t read_token_file(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		log_warn("control", "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0) {
		log_warn("control", "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return n;
}

int worker_token_matches_sha256(const char *token, const char *want_hex)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	char got[65], want[65];
	unsigned int md_len = 0;
	size_t i;
	int ok;

	if (!token[0] || strlen(want_hex) != 64)
		return 0;
	for (i = 0; i < 64; i++) {
		char c = want_hex[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
		want[i] = c;
	}
	want[64] = '\0';
	if (!EVP_Digest(token, strlen(token), md, &md_len, EVP_sha256(), NULL) || md_len != 32)
		return 0;
	for (i = 0; i < 32; i++) {
		got[2 * i] = hex[md[i] >> 4];
		got[2 * i + 1] = hex[md[i] & 15];
	}
	got[64] = '\0';
	ok = worker_token_equal(got, want);
	explicit_bzero(md, sizeof(md));
	return ok;
}

int worker_check_authorization(const char *header)
{
	char buf[1024];
	ssize_t n;
	int ok;

	if (!header || strncmp(header, "Bearer ", 7) != 0)
		return 0;
	/* Re-read on every call: the mounted Secret or annotation may change. */
	if (w.opts->control_token_sha256_file) {
		n = read_token_file(w.opts->control_token_sha256_file, buf, sizeof(buf));
		if (n < 0)
			return 0;
		if (n != 64) {
			log_warn("control", "%s: not a hex sha256 (%zd characters)",
				 w.opts->control_token_sha256_file, n);
			return 0;
		}
		return worker_token_matches_sha256(header + 7, buf);
	}
	n = read_token_file(w.opts->control_token_file, buf, sizeof(buf));
	if (n <= 0)
		return 0;
	ok = worker_token_equal(header + 7, buf);
	explicit_bzero(buf, sizeof(buf));
	return ok;
}

/* ---- files ------------------------------------------------------------------------------- */

static int mkdirs(const char *path)
{
	char buf[4096];
	size_t i, len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] == '/' || buf[i] == '\0') {
			char c = buf[i];

			buf[i] = '\0';
			if (mkdir(buf, 0755) != 0 && errno != EEXIST)
				return -errno;
			buf[i] = c;
		}
	}
	return 0;
}

static int write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	char tmp[4200];
	size_t off = 0;
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

/* ---- processes --------------------------------------------------------------------------- */

struct envp {
	char **v;
	size_t n;
};

static int env_add(struct envp *e, const char *name, const char *value)
{
	size_t len = strlen(name) + strlen(value) + 2, i, nlen = strlen(name);
	char *s = malloc(len), **grown;

	if (!s)
		return -ENOMEM;
	snprintf(s, len, "%s=%s", name, value);
	for (i = 0; i < e->n; i++) {
		if (strncmp(e->v[i], name, nlen) == 0 && e->v[i][nlen] == '=') {
			free(e->v[i]);
			e->v[i] = s;
			return 0;
		}
	}
	grown = realloc(e->v, (e->n + 2) * sizeof(*e->v));
	if (!grown) {
		free(s);
		return -ENOMEM;
	}
	e->v = grown;
	e->v[e->n++] = s;
	e->v[e->n] = NULL;
	return 0;
}

static void env_free(struct envp *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
	e->v = NULL;
	e->n = 0;
}

/* The environment of every child: ours, minus the worker's private variables. */
static int env_base(struct envp *e)
{
	char **p;

	e->v = calloc(1, sizeof(*e->v));
	if (!e->v)
		return -ENOMEM;
	for (p = environ; *p; p++) {
		char *eq = strchr(*p, '='), name[256];
		size_t len;

		if (!eq || (len = (size_t)(eq - *p)) >= sizeof(name))
			continue;
		memcpy(name, *p, len);
		name[len] = '\0';
		if (strncmp(name, "UDF_WORKER_", 11) == 0)
			continue;
		if (env_add(e, name, eq + 1))
			return -ENOMEM;
	}
	return 0;
}

static int proc_alloc(void)
{
	int i;

	for (i = 0; i < MAX_PROCS; i++) {
		if (!w.procs[i].used) {
			memset(&w.procs[i], 0, sizeof(w.procs[i]));
			w.procs[i].used = 1;
			w.procs[i].out_fd = -1;
			w.procs[i].ready_fd = -1;
			w.procs[i].slot = -1;
			return i;
		}
	}
	return -1;
}

/*
 * fork + exec with stdout/stderr into a pipe we relay, optionally a ready pipe as fd 3 and
 * an extra fd as fd 4. Only async-signal-safe calls between fork and exec.
 * Caller holds w.lock.
 */
static int spawn(enum proc_kind kind, char *const argv[], char *const envp[], const char *cwd,
		 int want_ready, int extra_fd)
{
	int out[2] = {-1, -1}, ready[2] = {-1, -1}, idx;
	sigset_t all;
	pid_t pid;

	idx = proc_alloc();
	if (idx < 0)
		return -EAGAIN;
	if (pipe2(out, O_CLOEXEC) != 0)
		goto out_fail;
	if (want_ready && pipe2(ready, O_CLOEXEC) != 0)
		goto out_fail;
	pid = fork();
	if (pid < 0)
		goto out_fail;
	if (pid == 0) {
		sigemptyset(&all);
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, &all, NULL);
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(out[1], 1);
		dup2(out[1], 2);
		if (want_ready)
			dup2(ready[1], 3);
		if (extra_fd >= 0)
			dup2(extra_fd, want_ready ? 4 : 3);
		if (cwd && chdir(cwd) != 0)
			_exit(126);
		execve(argv[0], argv, envp);
		execvpe(argv[0], argv, envp);
		_exit(127);
	}
	close(out[1]);
	if (want_ready) {
		close(ready[1]);
		fcntl(ready[0], F_SETFL, O_NONBLOCK);
	}
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	w.procs[idx].kind = kind;
	w.procs[idx].pid = pid;
	w.procs[idx].out_fd = out[0];
	w.procs[idx].ready_fd = want_ready ? ready[0] : -1;
	w.procs[idx].started_ms = now_ms();
	kick();
	return idx;
out_fail:
	w.procs[idx].used = 0;
	if (out[0] >= 0) {
		close(out[0]);
		close(out[1]);
	}
	if (ready[0] >= 0) {
		close(ready[0]);
		close(ready[1]);
	}
	return -errno;
}

/*
 * What a child writes reaches our log, status reasons and so gRPC errors: blank out the
 * function's token wherever it appears. The children are not given the token (the proxy
 * checks it), so this is the second line of defence. Caller holds w.lock.
 */
static void redact_token(char *line)
{
	const char *token = w.have_req ? w.req.token : NULL;
	size_t tlen = token ? strlen(token) : 0;
	char *at = line;

	/* A token of a few characters guards nothing (it can be guessed) and blanking each of its
	 * occurrences would garble every line: the operator's are 32 hex digits and more. */
	if (tlen < 8)
		return;
	while ((at = memmem(at, strlen(at), token, tlen)) != NULL) {
		memset(at, '*', tlen);
		at += tlen;
	}
}

/* Relays a child's output to our stderr line by line and keeps the last line. */
static void relay_output(struct proc *p)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(p->out_fd, buf, sizeof(buf))) > 0) {
		ssize_t i;

		for (i = 0; i < n; i++) {
			if (buf[i] == '\n' || p->out_len == sizeof(p->out_buf) - 1) {
				p->out_buf[p->out_len] = '\0';
				redact_token(p->out_buf);
				if (p->out_len) {
					log_info(p->kind == PROC_JOB	  ? "job"
						 : p->kind == PROC_ZYGOTE ? "zygote"
									  : "udf",
						 "[%d] %s", (int)p->pid, p->out_buf);
					memcpy(p->last_line, p->out_buf, p->out_len + 1);
				}
				p->out_len = 0;
				if (buf[i] == '\n')
					continue;
			}
			p->out_buf[p->out_len++] = buf[i];
		}
	}
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		if (p->out_len) {
			p->out_buf[p->out_len] = '\0';
			redact_token(p->out_buf);
			log_info("udf", "[%d] %s", (int)p->pid, p->out_buf);
			memcpy(p->last_line, p->out_buf, p->out_len + 1);
			p->out_len = 0;
		}
		close(p->out_fd);
		p->out_fd = -1;
	}
}

static void set_failed(const char *step, const char *reason)
{
	if (w.state == STATE_FAILED)
		return;
	w.state = STATE_FAILED;
	snprintf(w.step, sizeof(w.step), "%s", step);
	snprintf(w.reason, sizeof(w.reason), "%s", reason);
	log_error("worker", "specialization of %s failed at %s: %s",
		  w.req.function ? w.req.function : "?", step, reason);
}

static int serving_count(void)
{
	int i, n = 0;

	for (i = 0; i < w.nslots; i++)
		if (w.slots[i].proc >= 0 && w.procs[w.slots[i].proc].serving)
			n++;
	return n;
}

static void start_slot(int slot);

static void on_ready_line(void *arg, char *line)
{
	struct proc *p = arg;
	struct child_ready r;

	redact_token(line);
	child_ready_parse(line, &r);
	if (r.kind == CHILD_READY) {
		p->serving = 1;
		if (w.req.script && p->slot == 0 && r.argv_json)
			snprintf(w.script_argv_json, sizeof(w.script_argv_json), "%s", r.argv_json);
		if (w.proxy && w.slots[p->slot].backend_port)
			proxy_set_backend(w.proxy, p->slot, w.slots[p->slot].backend_port, 1);
		log_info("worker", "process %d (slot %d) serves", (int)p->pid, p->slot);
		/* Script form: the other slots copy how slot 0 ended up running Python. */
		if (w.req.script && p->slot == 0) {
			int i;

			for (i = 1; i < w.nslots; i++)
				if (w.slots[i].proc < 0 && !w.slots[i].restart_at_ms)
					start_slot(i);
		}
		if (w.state == STATE_SPECIALIZING && serving_count() == w.nslots) {
			w.state = STATE_READY;
			w.specialize_ms = now_ms() - w.t0_ms;
			snprintf(w.step, sizeof(w.step), "serve");
			log_info("worker", "ready: %s on %d process(es) in %lld ms", w.req.function,
				 w.nslots, w.specialize_ms);
			/* The script form never forks from the zygote: give its memory back. */
			if (w.req.script && w.zygote_proc >= 0) {
				w.zygote_retired = 1;
				kill(w.procs[w.zygote_proc].pid, SIGTERM);
			}
		}
	} else if (r.kind == CHILD_FAILED) {
		snprintf(p->fail_step, sizeof(p->fail_step), "%s", r.step);
		snprintf(p->fail_reason, sizeof(p->fail_reason), "%s", r.reason);
	}
}

/* Reads what is there without blocking: a UDF's own child may hold the pipe open. */
static void read_ready(struct proc *p)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(p->ready_fd, buf, sizeof(buf))) > 0)
		child_lines_feed(&p->ready_lines, buf, (size_t)n, on_ready_line, p);
	if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		close(p->ready_fd);
		p->ready_fd = -1;
	}
}

static void build_server_env(struct envp *e, int slot)
{
	char buf[4200];
	size_t i;

	env_base(e);
	for (i = 0; i < w.req.n_env; i++)
		env_add(e, w.req.env[i].name, w.req.env[i].value);
	snprintf(buf, sizeof(buf), "%d", slot);
	env_add(e, "UDF_WORKER_SLOT", buf);
	env_add(e, "UDF_WORKER_CONFIG", w.config_path);
	env_add(e, "UDF_WORKER_READY_FD", "3");
	env_add(e, "PYTHONUNBUFFERED", "1");
	if (w.req.script) {
		/* Databend's script runs `python`: ours, with the hook on its path. */
		const char *old = getenv("PATH");

		snprintf(buf, sizeof(buf), "%s/bin:%s", w.opts->run_dir,
			 old ? old : "/usr/local/bin:/usr/bin:/bin");
		env_add(e, "PATH", buf);
		snprintf(buf, sizeof(buf), "%s/hook:%s:%s/.packages", w.opts->runtime_dir,
			 w.opts->runtime_dir, w.opts->work_dir);
		env_add(e, "PYTHONPATH", buf);
		/* The script's own `python -m pip install` lands in the work directory (the venv
		 * is on a read-only root filesystem), on the path above. */
		snprintf(buf, sizeof(buf), "%s/.packages", w.opts->work_dir);
		env_add(e, "PIP_TARGET", buf);
		snprintf(buf, sizeof(buf), "127.0.0.1:%d", w.slots[slot].backend_port);
		env_add(e, "UDF_SERVER_ADDR", buf);
		/* The worker serves /health and /stats itself, for every process. */
		env_add(e, "RESOURCE_STATUS_ADDR", "127.0.0.1:0");
	}
}

/* Stops using the zygote now; its exit is reaped as usual. Caller holds w.lock. */
static void retire_zygote(void)
{
	if (w.zygote_proc >= 0) {
		w.zygote_retired = 1;
		kill(w.procs[w.zygote_proc].pid, SIGKILL);
	}
	if (w.zygote_sock >= 0)
		close(w.zygote_sock);
	w.zygote_sock = -1;
	w.zygote_ready = 0;
}

/* Asks the zygote to fork a server; returns the proc index or a negative errno. */
static int spawn_from_zygote(int slot, struct envp *e)
{
	int out[2] = {-1, -1}, ready[2] = {-1, -1}, idx, fds[2];
	char cmsgbuf[CMSG_SPACE(sizeof(fds))], reply[256], slot_s[16];
	struct msghdr msg = {0};
	struct cmsghdr *cmsg;
	struct iovec iov;
	cJSON *req, *env, *args;
	char *text = NULL;
	ssize_t n;
	size_t i;
	pid_t pid;

	idx = proc_alloc();
	if (idx < 0)
		return -EAGAIN;
	req = cJSON_CreateObject();
	env = cJSON_AddArrayToObject(req, "env");
	args = cJSON_AddArrayToObject(req, "args");
	for (i = 0; i < e->n; i++)
		cJSON_AddItemToArray(env, cJSON_CreateString(e->v[i]));
	snprintf(slot_s, sizeof(slot_s), "%d", slot);
	cJSON_AddItemToArray(args, cJSON_CreateString("--config"));
	cJSON_AddItemToArray(args, cJSON_CreateString(w.config_path));
	cJSON_AddItemToArray(args, cJSON_CreateString("--slot"));
	cJSON_AddItemToArray(args, cJSON_CreateString(slot_s));
	cJSON_AddStringToObject(req, "cwd", w.opts->work_dir);
	text = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!text || pipe2(out, O_CLOEXEC) != 0 || pipe2(ready, O_CLOEXEC) != 0)
		goto out_fail;
	fds[0] = out[1];
	fds[1] = ready[1];
	iov.iov_base = text;
	iov.iov_len = strlen(text);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cmsgbuf;
	msg.msg_controllen = sizeof(cmsgbuf);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cmsg), fds, sizeof(fds));
	/* We hold w.lock, which /health and /readyz need: a stopped or wedged zygote may cost
	 * them ZYGOTE_REPLY_MS once, then it is given up (killed) for good. */
	if (sendmsg(w.zygote_sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		goto out_zygote_broken;
	{
		struct pollfd pfd = {.fd = w.zygote_sock, .events = POLLIN};

		if (poll(&pfd, 1, ZYGOTE_REPLY_MS) != 1) {
			errno = ETIMEDOUT;
			goto out_zygote_broken;
		}
	}
	n = recv(w.zygote_sock, reply, sizeof(reply) - 1, MSG_DONTWAIT);
	if (n <= 0)
		goto out_zygote_broken;
	reply[n] = '\0';
	/* The zygote is Python of our uid: its answer is checked like any child's. */
	if (child_zygote_reply_parse(reply, &pid) != 0) {
		log_warn("worker", "zygote: %.64s", reply);
		goto out_fail;
	}
	cJSON_free(text);
	close(out[1]);
	close(ready[1]);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(ready[0], F_SETFL, O_NONBLOCK);
	w.procs[idx].kind = PROC_SERVER;
	w.procs[idx].pid = pid;
	w.procs[idx].out_fd = out[0];
	w.procs[idx].ready_fd = ready[0];
	w.procs[idx].started_ms = now_ms();
	return idx;
out_zygote_broken:
	log_warn("worker", "zygote does not answer (%s): giving it up", strerror(errno));
	retire_zygote();
out_fail:
	log_warn("worker", "zygote spawn failed: %s", strerror(errno));
	cJSON_free(text);
	w.procs[idx].used = 0;
	if (out[0] >= 0) {
		close(out[0]);
		close(out[1]);
	}
	if (ready[0] >= 0) {
		close(ready[0]);
		close(ready[1]);
	}
	return -EIO;
}

static void start_slot(int slot)
{
	char stub[4200], slot_s[16], script[4200];
	struct envp e = {0};
	int idx = -1;

	build_server_env(&e, slot);
	w.slots[slot].restart_at_ms = 0;
	if (w.req.script && w.script_argv_json[0]) {
		/* Later script slots run the same Python command line as slot 0 did. */
		cJSON *tree;
		char *args[64];

		if (child_argv_parse(w.script_argv_json, &tree, args, 64) > 0)
			idx = spawn(PROC_SERVER, args, e.v, w.opts->work_dir, 1, -1);
		cJSON_Delete(tree);
	} else if (w.req.script) {
		char *const args[] = {"/bin/bash", script, NULL};

		snprintf(script, sizeof(script), "%s/script.sh", w.opts->run_dir);
		idx = spawn(PROC_SERVER, args, e.v, w.opts->work_dir, 1, -1);
	} else {
		if (w.zygote_ready)
			idx = spawn_from_zygote(slot, &e);
		if (idx >= 0) {
			w.used_zygote = 1;
		} else {
			char *const args[] = {(char *)w.opts->python,
					      stub,
					      "--config",
					      w.config_path,
					      "--slot",
					      slot_s,
					      NULL};

			snprintf(stub, sizeof(stub), "%s/udf_stub.py", w.opts->runtime_dir);
			snprintf(slot_s, sizeof(slot_s), "%d", slot);
			idx = spawn(PROC_SERVER, args, e.v, w.opts->work_dir, 1, -1);
		}
	}
	env_free(&e);
	if (idx < 0) {
		log_error("worker", "cannot start slot %d: %s", slot, strerror(-idx));
		w.slots[slot].restart_at_ms = now_ms() + BACKOFF_MAX_MS;
		return;
	}
	w.procs[idx].slot = slot;
	w.slots[slot].proc = idx;
	log_info("worker", "slot %d: started process %d", slot, (int)w.procs[idx].pid);
}

static void on_exit_proc(int idx)
{
	struct proc *p = &w.procs[idx];
	char how[64];

	if (p->out_fd >= 0)
		relay_output(p);
	if (p->ready_fd >= 0)
		read_ready(p);
	if (WIFSIGNALED(p->status))
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(p->status));
	else
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(p->status));
	if (p->kind == PROC_JOB) {
		pthread_cond_broadcast(&w.job_done);
		return; /* the waiting thread frees it */
	}
	if (p->kind == PROC_ZYGOTE) {
		if (w.zygote_retired)
			log_info("worker", "zygote %d retired (%s)", (int)p->pid, how);
		else
			log_warn("worker", "zygote %d %s; servers start from scratch now",
				 (int)p->pid, how);
		w.zygote_ready = 0;
		if (w.zygote_sock >= 0)
			close(w.zygote_sock);
		w.zygote_sock = -1;
		w.zygote_proc = -1;
		goto out_free;
	}
	/* A server. */
	{
		int slot = p->slot, was_serving = p->serving;
		struct slot *s = &w.slots[slot];

		log_warn("worker", "process %d (slot %d) %s", (int)p->pid, slot, how);
		/* What it started (a script's helpers, a UDF's subprocesses) goes with it: a
		 * leftover could hold the slot's port or go on running unsupervised. */
		kill(-p->pid, SIGKILL);
		if (w.proxy)
			proxy_set_backend(w.proxy, slot, s->backend_port, 0);
		s->proc = -1;
		if (w.draining)
			goto out_free;
		if (w.state == STATE_SPECIALIZING && !was_serving) {
			char reason[LINE_MAX_LEN + 64];

			if (p->fail_step[0]) {
				set_failed(p->fail_step, p->fail_reason);
			} else {
				snprintf(reason, sizeof(reason), "%s%s%s",
					 p->last_line[0] ? p->last_line : "",
					 p->last_line[0] ? " (" : "", how);
				if (p->last_line[0])
					strncat(reason, ")", sizeof(reason) - strlen(reason) - 1);
				set_failed(w.req.script ? "script" : "serve", reason);
			}
			goto out_free;
		}
		if (w.state == STATE_FAILED)
			goto out_free;
		/* It served and died (a segfault, os.abort()): restart it with backoff. */
		w.restarts++;
		if (now_ms() - p->started_ms > STABLE_AFTER_MS)
			s->backoff_ms = 0;
		s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (s->backoff_ms > BACKOFF_MAX_MS)
			s->backoff_ms = BACKOFF_MAX_MS;
		/* The first restart is immediate: the zygote makes it cheap. */
		s->restart_at_ms = now_ms() + (s->backoff_ms == BACKOFF_MIN_MS ? 1 : s->backoff_ms);
	}
out_free:
	if (p->out_fd >= 0)
		close(p->out_fd);
	if (p->ready_fd >= 0)
		close(p->ready_fd);
	p->used = 0;
}

static void reap(void)
{
	int status, i;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < MAX_PROCS; i++) {
			if (w.procs[i].used && !w.procs[i].exited && w.procs[i].pid == pid) {
				w.procs[i].exited = 1;
				w.procs[i].status = status;
				on_exit_proc(i);
				break;
			}
		}
	}
}

/* ---- the zygote --------------------------------------------------------------------------- */

static void start_zygote(void)
{
	char zygote[4200], fd_s[8];
	struct envp e = {0};
	int sv[2], idx;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		log_warn("worker", "zygote: socketpair: %s", strerror(errno));
		return;
	}
	snprintf(zygote, sizeof(zygote), "%s/zygote.py", w.opts->runtime_dir);
	snprintf(fd_s, sizeof(fd_s), "%d", 3);
	env_base(&e);
	env_add(&e, "UDF_WORKER_ZYGOTE_FD", fd_s);
	env_add(&e, "PYTHONUNBUFFERED", "1");
	{
		char *const args[] = {(char *)w.opts->python, zygote, NULL};

		idx = spawn(PROC_ZYGOTE, args, e.v, "/", 0, sv[1]);
	}
	env_free(&e);
	close(sv[1]);
	if (idx < 0) {
		close(sv[0]);
		log_warn("worker", "zygote: %s", strerror(-idx));
		return;
	}
	w.zygote_sock = sv[0];
	w.zygote_proc = idx;
}

static void read_zygote(void)
{
	char buf[64];
	ssize_t n = recv(w.zygote_sock, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	if (n > 0) {
		buf[n] = '\0';
		if (strncmp(buf, "ready", 5) == 0 && !w.zygote_ready) {
			w.zygote_ready = 1;
			log_info("worker", "zygote %d is warm", (int)w.procs[w.zygote_proc].pid);
		}
	} else if (n == 0) {
		close(w.zygote_sock);
		w.zygote_sock = -1;
		w.zygote_ready = 0;
	}
}

/* ---- stats -------------------------------------------------------------------------------- */

static int stats_open(void)
{
	int fd;
	size_t size = (size_t)MAX_SLOTS * STATS_SLOT_SIZE;

	snprintf(w.stats_path, sizeof(w.stats_path), "%s/stats", w.opts->run_dir);
	fd = open(w.stats_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) != 0) {
		close(fd);
		return -errno;
	}
	w.stats = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (w.stats == MAP_FAILED) {
		w.stats = NULL;
		return -errno;
	}
	return 0;
}

static void format_time(double t, char *buf, size_t len)
{
	time_t secs = (time_t)t;
	struct tm tm;
	int us = (int)((t - (double)secs) * 1e6);

	gmtime_r(&secs, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us);
}

char *worker_stats_json(void)
{
	struct child_stats sum;
	char buf[64];
	cJSON *o;
	char *s;

	/* The UDF's processes write this memory (so can the UDF's code): child.h clamps. */
	child_stats_sum(w.stats, MAX_SLOTS, (double)time(NULL) + 86400, &sum);
	o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "request_count", (double)sum.count);
	if (sum.first > 0) {
		format_time(sum.first, buf, sizeof(buf));
		cJSON_AddStringToObject(o, "first_request_time", buf);
	} else {
		cJSON_AddNullToObject(o, "first_request_time");
	}
	if (sum.last > 0) {
		format_time(sum.last, buf, sizeof(buf));
		cJSON_AddStringToObject(o, "last_request_time", buf);
	} else {
		cJSON_AddNullToObject(o, "last_request_time");
	}
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* ---- specializing ------------------------------------------------------------------------- */

/* Runs a helper to completion (on the calling thread); its last output line in last. */
static int run_job(char *const argv[], char *const envp[], const char *cwd, char *last,
		   size_t last_len)
{
	int idx, status;

	pthread_mutex_lock(&w.lock);
	idx = spawn(PROC_JOB, argv, envp, cwd, 0, -1);
	if (idx < 0) {
		pthread_mutex_unlock(&w.lock);
		snprintf(last, last_len, "cannot run %s: %s", argv[0], strerror(-idx));
		return -1;
	}
	while (!w.procs[idx].exited)
		pthread_cond_wait(&w.job_done, &w.lock);
	status = w.procs[idx].status;
	snprintf(last, last_len, "%s", w.procs[idx].last_line);
	if (w.procs[idx].out_fd >= 0)
		close(w.procs[idx].out_fd);
	w.procs[idx].used = 0;
	pthread_mutex_unlock(&w.lock);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int write_config(void)
{
	cJSON *c = cJSON_CreateObject(), *arr;
	char path[4200], *text;
	size_t i;
	int rc;

	if (!c)
		return -ENOMEM;
	cJSON_AddStringToObject(c, "function", w.req.function);
	cJSON_AddStringToObject(c, "tenant", w.req.tenant);
	/* No token: the proxy checks it, and a UDF can read this file. */
	cJSON_AddStringToObject(c, "stats_path", w.stats_path);
	cJSON_AddStringToObject(c, "work_dir", w.opts->work_dir);
	snprintf(path, sizeof(path), "%s/imports", w.opts->work_dir);
	cJSON_AddStringToObject(c, "import_dir", path);
	snprintf(path, sizeof(path), "%s/.packages", w.opts->work_dir);
	cJSON_AddStringToObject(c, "packages_dir", path);
	arr = cJSON_AddArrayToObject(c, "backend_ports");
	for (i = 0; i < (size_t)w.nslots; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateNumber(w.slots[i].backend_port));
	cJSON_AddNumberToObject(c, "flight_port", w.opts->flight_port);
	if (!w.req.script) {
		cJSON_AddStringToObject(c, "handler", w.req.handler);
		arr = cJSON_AddArrayToObject(c, "input_types");
		for (i = 0; i < w.req.n_input_types; i++)
			cJSON_AddItemToArray(arr, cJSON_CreateString(w.req.served_input_types[i]));
		cJSON_AddStringToObject(c, "result_type", w.req.served_result_type);
		snprintf(path, sizeof(path), "%s/udf.py", w.opts->work_dir);
		cJSON_AddStringToObject(c, "code_path", path);
	}
	text = cJSON_Print(c);
	cJSON_Delete(c);
	if (!text)
		return -ENOMEM;
	rc = write_file(w.config_path, text, strlen(text), 0600);
	cJSON_free(text);
	return rc;
}

static void set_step(const char *step)
{
	pthread_mutex_lock(&w.lock);
	snprintf(w.step, sizeof(w.step), "%s", step);
	pthread_mutex_unlock(&w.lock);
}

static void fail(const char *step, const char *reason)
{
	pthread_mutex_lock(&w.lock);
	set_failed(step, reason);
	pthread_mutex_unlock(&w.lock);
}

static void *specializer(void *arg)
{
	struct imports_limits limits = {
	    .timeout_seconds = w.opts->import_timeout_seconds,
	    .max_bytes = w.opts->import_max_bytes,
	};
	struct imports_stats st;
	char reason[LINE_MAX_LEN], path[4200], last[LINE_MAX_LEN];
	int rc;
	size_t i;

	(void)arg;
	rc = mkdirs(w.opts->work_dir);
	if (rc) {
		snprintf(reason, sizeof(reason), "cannot create %s: %s", w.opts->work_dir,
			 strerror(-rc));
		fail("load", reason);
		return NULL;
	}
	if (w.req.script) {
		snprintf(path, sizeof(path), "%s/script.sh", w.opts->run_dir);
		rc = write_file(path, w.req.script, strlen(w.req.script), 0700);
		if (rc == 0)
			rc = write_config();
		if (rc) {
			snprintf(reason, sizeof(reason), "cannot write the script: %s",
				 strerror(-rc));
			fail("script", reason);
			return NULL;
		}
		set_step("script");
		goto start;
	}

	set_step("import");
	snprintf(path, sizeof(path), "%s/imports", w.opts->work_dir);
	rc = imports_fetch(&w.req, path, w.opts->cache_dir, &limits, &st, reason, sizeof(reason));
	if (rc) {
		fail("import", reason);
		return NULL;
	}
	if (w.req.n_imports)
		log_info("worker", "imports: %d downloaded, %d from the cache", st.downloaded,
			 st.cached);

	if (w.req.n_packages) {
		char stub[4200], target[4200];
		char **argv = calloc(w.req.n_packages + 8, sizeof(*argv));
		struct envp e = {0};
		size_t n = 0;

		set_step("packages");
		if (!argv) {
			fail("packages", "out of memory");
			return NULL;
		}
		snprintf(stub, sizeof(stub), "%s/udf_stub.py", w.opts->runtime_dir);
		snprintf(target, sizeof(target), "%s/.packages", w.opts->work_dir);
		argv[n++] = (char *)w.opts->python;
		argv[n++] = stub;
		argv[n++] = "install-packages";
		argv[n++] = target;
		for (i = 0; i < w.req.n_packages; i++)
			argv[n++] = w.req.packages[i];
		env_base(&e);
		env_add(&e, "PYTHONUNBUFFERED", "1");
		rc = run_job(argv, e.v, w.opts->work_dir, last, sizeof(last));
		env_free(&e);
		free(argv);
		if (rc != 0) {
			snprintf(reason, sizeof(reason), "%s",
				 last[0] ? last : "pip install failed");
			fail("packages", reason);
			return NULL;
		}
	}

	set_step("load");
	snprintf(path, sizeof(path), "%s/udf.py", w.opts->work_dir);
	rc = write_file(path, w.req.code, strlen(w.req.code), 0644);
	if (rc == 0)
		rc = write_config();
	if (rc) {
		snprintf(reason, sizeof(reason), "cannot write %s: %s", path, strerror(-rc));
		fail("load", reason);
		return NULL;
	}
start:
	pthread_mutex_lock(&w.lock);
	if (w.state == STATE_SPECIALIZING)
		w.want_servers = 1;
	kick();
	pthread_mutex_unlock(&w.lock);
	return NULL;
}

/* A free loopback port for a backend (the proxy connects to it). */
static int free_port(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	socklen_t len = sizeof(ss);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	memset(&ss, 0, sizeof(ss));
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)in, sizeof(*in)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		port = ntohs(in->sin_port);
	close(fd);
	return port;
}

int worker_specialize(struct spec_request *req, char *msg, size_t msg_len)
{
	pthread_t t;
	int status = 202, i;

	pthread_mutex_lock(&w.lock);
	if (w.draining) {
		snprintf(msg, msg_len, "the worker is shutting down");
		status = 503;
		goto out;
	}
	if (w.state != STATE_IDLE) {
		if (strcmp(w.req.canonical, req->canonical) == 0) {
			snprintf(msg, msg_len, "already %s",
				 w.state == STATE_READY ? "ready" : "accepted");
			goto out; /* the same request again: nothing to do */
		}
		snprintf(msg, msg_len, "already specialized for function \"%s\"%s", w.req.function,
			 strcmp(w.req.function, req->function) == 0 ? " with different content"
								    : "");
		status = 409;
		goto out;
	}
	w.req = *req;
	memset(req, 0, sizeof(*req));
	w.have_req = 1;
	w.state = STATE_SPECIALIZING;
	w.t0_ms = now_ms();
	snprintf(w.step, sizeof(w.step), "%s", w.req.script ? "script" : "import");
	w.nslots = w.opts->processes;
	for (i = 0; i < w.nslots; i++) {
		w.slots[i].proc = -1;
		w.slots[i].backend_port = free_port();
		if (w.slots[i].backend_port <= 0) {
			set_failed("serve", "no free loopback port for a server process");
			goto out;
		}
	}
	if (w.proxy)
		proxy_set_credentials(w.proxy, w.req.token, w.req.tenant);
	log_info("worker", "specializing into %s (tenant %s, %s form, %d process(es))",
		 w.req.function, w.req.tenant, w.req.script ? "script" : "structured", w.nslots);
	if (pthread_create(&t, NULL, specializer, NULL) != 0) {
		set_failed("load", "cannot start a thread");
		goto out;
	}
	pthread_detach(t);
	snprintf(msg, msg_len, "accepted");
out:
	pthread_mutex_unlock(&w.lock);
	return status;
}

/* ---- status ------------------------------------------------------------------------------- */

static const char *state_name(enum worker_state s)
{
	switch (s) {
	case STATE_IDLE:
		return "idle";
	case STATE_SPECIALIZING:
		return "specializing";
	case STATE_READY:
		return "ready";
	case STATE_FAILED:
		return "failed";
	}
	return "unknown";
}

char *worker_status_json(void)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	if (!o)
		return NULL;
	pthread_mutex_lock(&w.lock);
	cJSON_AddStringToObject(o, "state", state_name(w.state));
	if (w.have_req)
		cJSON_AddStringToObject(o, "function", w.req.function);
	else
		cJSON_AddNullToObject(o, "function");
	cJSON_AddStringToObject(o, "step", w.step);
	cJSON_AddStringToObject(o, "reason", w.reason);
	cJSON_AddNumberToObject(o, "processes", serving_count());
	cJSON_AddNumberToObject(o, "processes_wanted", w.have_req ? w.nslots : w.opts->processes);
	cJSON_AddNumberToObject(o, "restarts", w.restarts);
	if (w.state == STATE_READY)
		cJSON_AddNumberToObject(o, "specialize_ms", (double)w.specialize_ms);
	else
		cJSON_AddNullToObject(o, "specialize_ms");
	cJSON_AddBoolToObject(o, "zygote", w.zygote_ready);
	cJSON_AddBoolToObject(o, "from_zygote", w.used_zygote);
	pthread_mutex_unlock(&w.lock);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

int worker_ready(void)
{
	int r;

	pthread_mutex_lock(&w.lock);
	r = w.state == STATE_READY && serving_count() > 0;
	pthread_mutex_unlock(&w.lock);
	return r;
}

int worker_readyz(void)
{
	int r = 0;

	pthread_mutex_lock(&w.lock);
	if (!w.draining) {
		if (w.state == STATE_IDLE)
			r = !w.opts->zygote || w.zygote_ready;
		else if (w.state == STATE_READY)
			r = serving_count() > 0;
	}
	pthread_mutex_unlock(&w.lock);
	return r;
}

int worker_done(void)
{
	int d;

	pthread_mutex_lock(&w.lock);
	d = w.done;
	pthread_mutex_unlock(&w.lock);
	return d;
}

void worker_set_wakeup(void (*fn)(void))
{
	w.wakeup = fn;
}

/* ---- the supervisor loop ------------------------------------------------------------------ */

/*
 * Children get libudf-preload.so (beside this binary) in LD_PRELOAD: it sets TCP_NODELAY on
 * the sockets gRPC accepts, which gVisor does not inherit from the listener, and holds the
 * arena cache udf_stub.keep_arenas() installs (see preload.c). Without the library (a bare
 * build of udf-worker alone) the servers run as before, only slower under gVisor.
 */
static void preload_library(void)
{
	char exe[4096], lib[4200], both[8400];
	const char *old = getenv("LD_PRELOAD");
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return;
	*slash = '\0';
	snprintf(lib, sizeof(lib), "%s/libudf-preload.so", exe);
	if (access(lib, R_OK) != 0) {
		log_warn("worker",
			 "no %s: under gVisor Flight connections keep Nagle on and "
			 "Python maps its arenas afresh for every call",
			 lib);
		return;
	}
	if (old && *old && !strstr(old, lib)) {
		snprintf(both, sizeof(both), "%s:%s", lib, old);
		setenv("LD_PRELOAD", both, 1);
	} else if (!old || !*old) {
		setenv("LD_PRELOAD", lib, 1);
	}
}

/*
 * glibc's malloc in the children keeps what it got. By default it gives the top of its heap
 * back after each 65,536-row call and takes it again on the next, and serves a block over
 * 128 KiB (the call's Python list of 65,536 values is 512 KiB) from a mapping of its own,
 * unmapped on free; under gVisor each page taken again is a fault the sentry serves. Blocks
 * up to 32 MiB come from the heap, up to 64 MiB of freed heap is kept, and it grows by 16 MiB
 * at a time. Set in the container's environment, other values win; count the kept memory in
 * the pod's memory limit.
 */
static void malloc_settings(void)
{
	setenv("MALLOC_MMAP_THRESHOLD_", "33554432", 0);
	setenv("MALLOC_TRIM_THRESHOLD_", "67108864", 0);
	setenv("MALLOC_TOP_PAD_", "16777216", 0);
}

/*
 * With a read-only root filesystem the image's HOME is not writable: children get one under
 * the run directory, and a TMPDIR there when /tmp is not writable either. pip keeps no cache
 * (one pod serves one function once). Called before any thread starts (setenv).
 */
static int writable_env(const struct worker_options *opts)
{
	const char *home = getenv("HOME"), *tmp = getenv("TMPDIR");
	char path[4200];
	int rc;

	if (!home || !*home || access(home, W_OK) != 0) {
		snprintf(path, sizeof(path), "%s/home", opts->run_dir);
		rc = mkdirs(path);
		if (rc)
			return rc;
		setenv("HOME", path, 1);
		log_info("worker", "HOME %s is not writable: children use %s",
			 home ? home : "(unset)", path);
	}
	if ((!tmp || !*tmp) && access("/tmp", W_OK) != 0) {
		snprintf(path, sizeof(path), "%s/tmp", opts->run_dir);
		rc = mkdirs(path);
		if (rc)
			return rc;
		setenv("TMPDIR", path, 1);
		log_info("worker", "/tmp is not writable: children use TMPDIR=%s", path);
	}
	setenv("PIP_NO_CACHE_DIR", "1", 0);
	preload_library();
	malloc_settings();
	return 0;
}

void worker_use_options(const struct worker_options *opts)
{
	w.opts = opts;
}

int worker_init(const struct worker_options *opts)
{
	sigset_t set;
	int rc, i;
	char bin[4200], link_path[4200];

	w.opts = opts;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	w.signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (w.signal_fd < 0)
		return -errno;
	/* Grandchildren (the zygote's servers) become ours when their parent exits. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (pipe2(w.kick_fd, O_CLOEXEC | O_NONBLOCK) != 0)
		return -errno;
	/* A UDF runs as our uid: it must not read our memory (a token passing through) nor
	 * ptrace us. Children are exec'd, which makes them dumpable again. */
	prctl(PR_SET_DUMPABLE, 0);
	rc = mkdirs(opts->run_dir);
	if (rc)
		return rc;
	rc = writable_env(opts);
	if (rc)
		return rc;
	/* `python` and `python3` for the script form: the configured interpreter. */
	snprintf(bin, sizeof(bin), "%s/bin", opts->run_dir);
	rc = mkdirs(bin);
	if (rc)
		return rc;
	for (i = 0; i < 2; i++) {
		/* A wrapper, not a symlink: a venv's Python finds its pyvenv.cfg by its own path.
		 */
		char sh[4300];

		snprintf(link_path, sizeof(link_path), "%s/%s", bin, i ? "python3" : "python");
		unlink(link_path);
		snprintf(sh, sizeof(sh), "#!/bin/sh\nexec %s \"$@\"\n", opts->python);
		rc = write_file(link_path, sh, strlen(sh), 0755);
		if (rc)
			return rc;
	}
	snprintf(w.config_path, sizeof(w.config_path), "%s/config.json", opts->run_dir);
	rc = stats_open();
	if (rc)
		return rc;
	for (i = 0; i < MAX_SLOTS; i++)
		w.slots[i].proc = -1;
	/* Always in front, even of one process: it is where the token is checked (proxy.h). */
	rc = proxy_start(opts->flight_port, MAX_SLOTS, &w.proxy);
	if (rc)
		return rc;
	proxy_set_limits(w.proxy, opts->max_connections, opts->flight_idle_seconds);
	pthread_mutex_lock(&w.lock);
	if (opts->zygote)
		start_zygote();
	pthread_mutex_unlock(&w.lock);
	return 0;
}

static void begin_drain(int sig)
{
	int i, any = 0;

	if (w.draining)
		return;
	w.draining = 1;
	w.drain_deadline_ms = now_ms() + (long long)w.opts->drain_seconds * 1000;
	log_info("worker", "signal %d: draining (up to %d s)", sig, w.opts->drain_seconds);
	if (w.proxy)
		proxy_drain(w.proxy);
	for (i = 0; i < MAX_PROCS; i++) {
		if (w.procs[i].used && !w.procs[i].exited) {
			kill(-w.procs[i].pid, SIGTERM);
			kill(w.procs[i].pid, SIGTERM);
			any = 1;
		}
	}
	(void)any;
}

static int children_left(void)
{
	int i, n = 0;

	for (i = 0; i < MAX_PROCS; i++)
		if (w.procs[i].used && !w.procs[i].exited)
			n++;
	return n;
}

/*
 * The script form learns that its server serves from our hook's "ready" line. A script that
 * runs Python without the hook (`python -I`, another interpreter) never says it: once slot
 * 0's loopback port has accepted connections for SCRIPT_PROBE_GRACE_MS without a ready line,
 * it serves all the same (the proxy checks the token either way), as the one process we
 * know how to start. Caller holds w.lock.
 */
#define SCRIPT_PROBE_GRACE_MS 1000

static void probe_script_port(long long now)
{
	struct sockaddr_in to = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
	struct proc *p;
	int fd, open_now;

	if (!w.req.script || w.state != STATE_SPECIALIZING || w.nslots < 1 || w.slots[0].proc < 0 ||
	    !w.slots[0].backend_port)
		return;
	p = &w.procs[w.slots[0].proc];
	if (p->serving || p->exited)
		return;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	to.sin_port = htons((uint16_t)w.slots[0].backend_port);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	open_now = connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0;
	close(fd);
	if (!open_now) {
		p->port_open_ms = 0;
		return;
	}
	if (!p->port_open_ms) {
		p->port_open_ms = now;
		return;
	}
	if (now - p->port_open_ms < SCRIPT_PROBE_GRACE_MS)
		return;
	log_warn("worker",
		 "process %d serves on its port without our hook's ready line: one "
		 "process",
		 (int)p->pid);
	w.nslots = 1;
	on_ready_line(p, (char[]){"ready"});
}

void worker_supervise(void)
{
	struct pollfd pfd[2 + 2 * MAX_PROCS + 1];
	int owner[2 + 2 * MAX_PROCS + 1];
	int i, n, timeout, zygote_pending;

	for (;;) {
		long long now;

		pthread_mutex_lock(&w.lock);
		now = now_ms();
		/* A zygote still importing is worth waiting for: it is half way there. */
		zygote_pending = !w.req.script && w.zygote_proc >= 0 && !w.zygote_ready &&
				 now - w.procs[w.zygote_proc].started_ms < 15000;
		if (w.want_servers && !w.servers_started && !w.draining && !zygote_pending) {
			w.servers_started = 1;
			/* Script form: slot 0 runs the script; the rest copy it once it serves. */
			for (i = 0; i < (w.req.script ? 1 : w.nslots); i++)
				start_slot(i);
		}
		timeout = zygote_pending ? 50 : 1000;
		if (w.req.script && w.state == STATE_SPECIALIZING && !w.draining) {
			probe_script_port(now);
			timeout = 200;
		}
		for (i = 0; i < w.nslots && !w.draining; i++) {
			if (w.slots[i].restart_at_ms && w.slots[i].proc < 0) {
				if (w.slots[i].restart_at_ms <= now)
					start_slot(i);
				else if (w.slots[i].restart_at_ms - now < timeout)
					timeout = (int)(w.slots[i].restart_at_ms - now);
			}
		}
		if (w.state == STATE_SPECIALIZING &&
		    now - w.t0_ms > (long long)w.opts->specialize_timeout_seconds * 1000) {
			char reason[128], step[sizeof(w.step)];

			snprintf(reason, sizeof(reason), "not ready after %d s",
				 w.opts->specialize_timeout_seconds);
			memcpy(step, w.step, sizeof(step)); /* set_failed() writes w.step */
			set_failed(step, reason);
			for (i = 0; i < MAX_PROCS; i++)
				if (w.procs[i].used && !w.procs[i].exited &&
				    w.procs[i].kind != PROC_ZYGOTE)
					kill(-w.procs[i].pid, SIGKILL);
		}
		if (w.draining) {
			if (!children_left()) {
				w.done = 1;
				pthread_mutex_unlock(&w.lock);
				break;
			}
			if (now >= w.drain_deadline_ms) {
				for (i = 0; i < MAX_PROCS; i++) {
					if (w.procs[i].used && !w.procs[i].exited) {
						kill(-w.procs[i].pid, SIGKILL);
						kill(w.procs[i].pid, SIGKILL);
					}
				}
			}
			timeout = 100;
		}
		n = 0;
		pfd[n].fd = w.signal_fd;
		pfd[n].events = POLLIN;
		owner[n++] = -1;
		pfd[n].fd = w.kick_fd[0];
		pfd[n].events = POLLIN;
		owner[n++] = -2;
		if (w.zygote_sock >= 0) {
			pfd[n].fd = w.zygote_sock;
			pfd[n].events = POLLIN;
			owner[n++] = -3;
		}
		for (i = 0; i < MAX_PROCS; i++) {
			if (!w.procs[i].used)
				continue;
			if (w.procs[i].out_fd >= 0) {
				pfd[n].fd = w.procs[i].out_fd;
				pfd[n].events = POLLIN;
				owner[n++] = i;
			}
			if (w.procs[i].ready_fd >= 0) {
				pfd[n].fd = w.procs[i].ready_fd;
				pfd[n].events = POLLIN;
				owner[n++] = MAX_PROCS + i;
			}
		}
		pthread_mutex_unlock(&w.lock);

		if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR) {
			log_error("worker", "poll: %s", strerror(errno));
			sleep(1);
			continue;
		}

		pthread_mutex_lock(&w.lock);
		for (i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			if (owner[i] == -1) {
				struct signalfd_siginfo si;

				while (read(w.signal_fd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGCHLD || si.ssi_signo == SIGHUP)
						continue;
					begin_drain((int)si.ssi_signo);
				}
				reap();
			} else if (owner[i] == -2) {
				char buf[64];

				while (read(w.kick_fd[0], buf, sizeof(buf)) > 0)
					;
			} else if (owner[i] == -3) {
				if (w.zygote_sock >= 0)
					read_zygote();
			} else if (owner[i] < MAX_PROCS) {
				struct proc *p = &w.procs[owner[i]];

				if (p->used && p->out_fd == pfd[i].fd)
					relay_output(p);
			} else {
				struct proc *p = &w.procs[owner[i] - MAX_PROCS];

				if (p->used && p->ready_fd == pfd[i].fd)
					read_ready(p);
			}
		}
		/* SIGCHLD can coalesce with others: reap on every turn. */
		reap();
		pthread_mutex_unlock(&w.lock);
	}
	log_info("worker", "drained; exiting");
	if (w.proxy)
		proxy_stop(w.proxy);
	if (w.wakeup)
		w.wakeup();
}
