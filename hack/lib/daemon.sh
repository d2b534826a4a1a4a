# shellcheck shell=bash
# Background daemons for hack/cluster.sh and hack/node.sh: started detached, tracked by pid
# files in $RUN, logging to $LOGS/NAME.log, stopped by pid (never by name). Sourced, never run.
# The caller sets RUN, LOGS and DAEMON_WHO (the word that starts its messages).

# daemon_pid NAME: prints the pid of the running NAME, or fails. The process must still be
# the cached binary we started (a rebuilt binary shows as "... (deleted)"), so a recycled
# pid is never taken for ours.
daemon_pid() {
	local f="$RUN/$1.pid" pid exe
	[ -f "$f" ] || return 1
	pid=$(cat "$f")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	[ "${exe% (deleted)}" = "$UDF_BIN/$1" ] || return 1
	echo "$pid"
}

# daemon_start NAME ARGS...: runs $UDF_BIN/NAME in its own session (a test runner's timeout
# must not take it down), unless it already runs.
daemon_start() {
	local name="$1" pid _
	shift
	daemon_pid "$name" >/dev/null && return 0
	# 8<&- 9<&-: the lock descriptors of cluster.sh and node.sh; a daemon that inherited one
	# would hold the lock for as long as it lives.
	PATH="$UDF_BIN:$PATH" setsid "$UDF_BIN/$name" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 8<&- 9<&- &
	pid=$!
	echo "$pid" >"$RUN/$name.pid"
	# Until the child has exec'd, /proc/PID/exe is bash or setsid and daemon_pid would call
	# it dead: wait for the exec (or the exit) so callers see the real state.
	for _ in $(seq 1 250); do
		[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$UDF_BIN/$name" ] && return 0
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.02
	done
}

# daemon_wait NAME SECONDS CHECK...: polls CHECK until it succeeds; when NAME dies or time
# runs out, prints the tail of NAME's log and fails.
daemon_wait() {
	local name="$1" secs="$2"
	shift 2
	local deadline=$((SECONDS + secs))
	while [ "$SECONDS" -lt "$deadline" ]; do
		"$@" >/dev/null 2>&1 && return 0
		if ! daemon_pid "$name" >/dev/null; then
			echo "$DAEMON_WHO: $name exited; last lines of $LOGS/$name.log:" >&2
			tail -n 25 "$LOGS/$name.log" >&2
			return 1
		fi
		sleep 0.2
	done
	echo "$DAEMON_WHO: $name not ready after ${secs}s; last lines of $LOGS/$name.log:" >&2
	tail -n 25 "$LOGS/$name.log" >&2
	return 1
}

# daemon_stop NAME: SIGTERM, up to 10 s to exit, then SIGKILL.
daemon_stop() {
	local name="$1" pid _
	pid=$(daemon_pid "$name") || {
		rm -f "$RUN/$name.pid"
		return 0
	}
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$RUN/$name.pid"
}
