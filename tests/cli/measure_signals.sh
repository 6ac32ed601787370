#!/usr/bin/env bash
# Signals sent to `wattwise measure` reach the command, and its fate becomes wattwise's exit code.
set -u
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export WW_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1
fail() { echo "FAIL: $*"; exit 1; }

wait_for_child() {  # until the measured command runs (its marker file exists)
  for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.05; done
  fail "the command never started"
}

# The command traps SIGTERM and exits 42: that 42 proves the signal was forwarded.
"$bin" measure -- sh -c 'trap "kill \$!; exit 42" TERM; touch started1; sleep 30 >/dev/null 2>&1 & wait' 2>/dev/null &
pid=$!
wait_for_child started1
kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" = 42 ] || fail "SIGTERM: got exit code $rc, expected 42 from the command's trap"

# An untrapped SIGTERM kills the command: 128 + 15.
"$bin" measure -- sh -c 'touch started2; exec sleep 30' 2>/dev/null &
pid=$!
wait_for_child started2
sleep 0.1
kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" = 143 ] || fail "untrapped SIGTERM: got $rc, expected 143"

# SIGINT and SIGHUP are forwarded too (the command starts with default dispositions).
for sig in INT HUP; do
  rm -f started3
  "$bin" measure -- sh -c 'touch started3; exec sleep 30' 2>/dev/null &
  pid=$!
  wait_for_child started3
  sleep 0.1
  kill -"$sig" "$pid"
  wait "$pid"
  rc=$?
  expected=$((128 + $(kill -l "$sig")))
  [ "$rc" = "$expected" ] || fail "SIG$sig: got $rc, expected $expected"
done
ls runs/*/metrics.json >/dev/null || fail "no results written after a signal"

# The command runs in a process group of its own and a signal goes to the whole group: the shell's
# own child (`sleep 37; true`) dies with it instead of running on orphaned.
alive() { local state; state=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$state" ] && [ "${state#Z}" = "$state" ]; }
"$bin" measure -- sh -c 'sleep 37; true' 2>/dev/null &
pid=$!
shell=""; sleeper=""
for _ in $(seq 200); do
  shell=$(pgrep -P "$pid" | head -1)
  [ -n "$shell" ] && sleeper=$(pgrep -P "$shell" | head -1)
  [ -n "$sleeper" ] && break
  sleep 0.05
done
[ -n "$sleeper" ] || fail "sh -c 'sleep 37; true' never started its sleep"
[ "$(ps -o pgid= -p "$shell" | tr -d ' ')" = "$shell" ] || fail "the command is not the leader of its own process group"
[ "$(ps -o pgid= -p "$sleeper" | tr -d ' ')" = "$shell" ] || fail "the command's child is not in the command's group"
kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" = 143 ] || fail "SIGTERM to sh -c 'sleep 37; true': got $rc, expected 143"
for _ in $(seq 200); do alive "$sleeper" || break; sleep 0.05; done
if alive "$sleeper"; then
  kill "$sleeper"
  fail "SIGTERM reached sh but not its child: sleep ran on orphaned"
fi

# From a terminal (a pseudo-terminal here): the command gets the terminal, so it reads from it and
# Ctrl-C / Ctrl-Z reach it as they would a shell's job; wattwise stops with it on Ctrl-Z (the shell
# sees the job stopped), resumes it when continued, and writes its results after Ctrl-C.
python3 - "$bin" <<'PY' || fail "terminal behaviour (see above)"
import os, pty, select, signal, sys, time

binary = sys.argv[1]

def start(out, script):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(binary, [binary, "measure", "--out", out, "--", "sh", "-c", script])
    return pid, fd

def read_until(fd, needle, seconds=20):
    data, deadline = b"", time.monotonic() + seconds
    while needle not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data

def finish(pid, fd):
    read_until(fd, b"\0nothing", 20)  # drain until the terminal closes
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)

problems = []
# Reading from the terminal.
pid, fd = start("tty_read", "touch tty_read.started; read line; echo got:$line; exit 5")
while not os.path.exists("tty_read.started"): time.sleep(0.02)
os.write(fd, b"hello\n")
out = read_until(fd, b"got:hello")
code = finish(pid, fd)
if b"got:hello" not in out or code != 5:
    problems.append(f"read from the terminal: exit {code}, output {out!r}")

# Ctrl-C: the command's group gets SIGINT from the terminal; wattwise writes its results.
pid, fd = start("tty_int", "touch tty_int.started; sleep 30; echo not-interrupted")
while not os.path.exists("tty_int.started"): time.sleep(0.02)
time.sleep(0.1)
os.write(fd, b"\x03")
code = finish(pid, fd)
if code != 130 or not os.path.exists("tty_int/metrics.json"):
    problems.append(f"Ctrl-C: exit {code} (expected 130), metrics.json written: {os.path.exists('tty_int/metrics.json')}")

# Ctrl-Z stops the command and wattwise; SIGCONT (the shell's fg) resumes both.
pid, fd = start("tty_stop", "touch tty_stop.started; read line; echo got:$line; exit 7")
while not os.path.exists("tty_stop.started"): time.sleep(0.02)
time.sleep(0.1)
os.write(fd, b"\x1a")
deadline, stopped = time.monotonic() + 20, False
while time.monotonic() < deadline:
    r, status = os.waitpid(pid, os.WUNTRACED | os.WNOHANG)
    if r == pid and os.WIFSTOPPED(status):
        stopped = True
        break
    time.sleep(0.02)
if not stopped:
    problems.append("Ctrl-Z: wattwise did not stop with its command")
os.kill(pid, signal.SIGCONT)
os.write(fd, b"again\n")
out = read_until(fd, b"got:again")
code = finish(pid, fd)
if b"got:again" not in out or code != 7:
    problems.append(f"after Ctrl-Z and continue: exit {code}, output {out!r}")

print("\n".join(problems) if problems else "terminal: ok")
sys.exit(1 if problems else 0)
PY
echo "measure_signals: ok"
