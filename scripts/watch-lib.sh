# Sourced by the scripts that run a function under `cargo lambda watch` (local-invoke.sh,
# stream-ttft.sh); they define `fail MESSAGE` before calling these.

# A free loopback port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_listening PORT WATCH_PID TRIES: waits (TRIES half-seconds at most) until the emulator
# listens on PORT; fails at once if the watcher exits first.
wait_listening() {
  local _
  for _ in $(seq 1 "$3"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || fail "cargo lambda watch exited early"
    sleep 0.5
  done
}
